import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import JobSpec
import JobStore

extension FarmAPI {
    /// Fields of a spec that query parameters may fill (as the CLI's flags do).
    static let overrideFields = Set<String>([
        "name", "model", "sampler", "cfg", "width", "height", "steps", "negative", "refiner", "refiner_switch", "vae", "loras",
        "expires_after", "notify", "upscaler", "upscale_by",
    ]).union(JobSpec.finishingFields)

    /// `/v1/jobs…` and `/v1/tasks/{task}/image`: a submit token lists, submits, reads and steers its owner's jobs and
    /// images; an admin token every job.
    func addJobRoutes(submit: APIRoutes) {
        let pool = self.pool
        submit.on(.get, "jobs") { request, context in
            // A submit token sees its owner's jobs; an admin sees all, or one owner's with `?owner=`.
            var scope = context.scope
            for (key, value) in request.uri.queryParameters {
                guard key == "owner" else { throw APIError(status: 400, "unknown query parameter \(key)", field: String(key)) }
                if scope == nil { scope = String(value) }
            }
            let owner = scope
            return try Self.json(try await pool.run { try $0.jobs(owner: owner) })
        }
        submit.on(.post, "jobs") { request, context in
            try await self.submit(request, grant: context.grant)
        }
        submit.on(.get, "models") { _, _ in
            try Self.json(try await pool.run { try $0.farmModels() })
        }
        submit.on(.get, "jobs/:job") { _, context in
            let job = try context.pathID("job")
            let detail = try await pool.run { try $0.jobDetail(job) }
            guard let detail, context.scope == nil || context.scope == detail.owner else {
                throw APIError(status: 404, "job \(job) does not exist")
            }
            return try Self.json(detail)
        }
        submit.on(.get, "jobs/:job/images") { request, context in
            let job = try context.pathID("job")
            let scope = context.scope
            let (offset, limit) = try Self.page(request)
            let images = try await pool.run { store -> [ImageRecord]? in
                guard let owner = try store.jobOwner(job), scope == nil || scope == owner else { return nil }
                return try store.imageList(job: job, offset: offset, limit: limit)
            }
            guard let images else { throw APIError(status: 404, "job \(job) does not exist") }
            return try Self.json(images)
        }
        submit.on(.get, "tasks/:task/image") { _, context in
            let task = try context.pathID("task")
            let scope = context.scope
            let found = try await pool.run { store -> Data? in
                if let scope, try store.taskOwner(task) != scope { return nil }
                return try store.image(task: task)
            }
            guard let png = found else {
                throw APIError(status: 404, "task \(task) has no image")
            }
            // nosniff (NoSniffMiddleware): a browser must never read stored bytes as anything but the PNG they are declared to be.
            return Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
        }
        // A submit token steers its owner's jobs; another owner's answer 404, as if they did not exist.
        for action in JobAction.allCases {
            submit.on(.post, "jobs/:job/\(action.rawValue)") { _, context in
                let job = try context.pathID("job")
                let scope = context.scope
                let reply = try await pool.run { store -> JobActionReply? in
                    if let scope, try store.jobOwner(job) != scope { return nil }
                    return try store.perform(action, job: job)
                }
                guard let reply else {
                    throw APIError(status: 404, "job \(job) does not exist")
                }
                return try Self.json(reply)
            }
        }
    }

    /// `POST /v1/jobs`: parses the body as a spec in `?format=` and queues it for the token's owner; a token below
    /// admin may not ask for a priority above `maxSubmitPriority`.
    func submit(_ request: Request, grant: TokenGrant?) async throws -> Response {
        let role = grant?.role
        let owner = grant?.owner ?? ""
        var format = "yaml"
        var overrides: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            if key == "format" {
                format = String(value)
                guard ["yaml", "json", "jsonl", "csv", "txt", "tasks"].contains(format) else {
                    throw APIError(status: 400, "format must be yaml, json, jsonl, csv, txt or tasks, got \(format)", field: "format")
                }
            } else if Self.overrideFields.contains(String(key)) {
                overrides[String(key)] = String(value)
            } else {
                throw APIError(status: 400, "unknown query parameter \(key)", field: String(key))
            }
        }
        let data = try await Self.collect(request.body)
        guard let text = String(data: data, encoding: .utf8) else { throw APIError(status: 400, "the body is not UTF-8 text", field: "body") }
        // A big spec takes seconds to expand: off Swift's cooperative pool, which serves every other request.
        let (file, fields) = ("spec.\(format)", overrides)
        let spec = try await Self.offThePool { try JobSpec.parse(text, file: file, overrides: fields) }
        if role != .admin && spec.priority > maxSubmitPriority {
            throw APIError(
                status: 400, "priority \(spec.priority) is above \(maxSubmitPriority), the highest a submit token may ask for",
                field: "priority")
        }
        let id = try await pool.run { store in
            try store.enqueue(
                name: spec.name, model: spec.model, owner: owner, maxAttempts: spec.maxAttempts, priority: spec.priority,
                expiresAfter: spec.expiresAfter, notify: spec.notify, tasks: spec.tasks)
        }
        return try Self.json(SubmitReply(id: id, tasks: spec.tasks.count), status: 201)
    }

    /// The `?offset=N&limit=M` of a paged list: offset 0 and no limit when absent; 400 naming a bad one.
    static func page(_ request: Request) throws -> (offset: Int, limit: Int?) {
        var offset = 0
        var limit: Int?
        for (key, value) in request.uri.queryParameters {
            switch key {
            case "offset":
                guard let number = Int(String(value)), number >= 0 else {
                    throw APIError(status: 400, "offset must be a whole number", field: "offset")
                }
                offset = number
            case "limit":
                guard let number = Int(String(value)), (1...10_000).contains(number) else {
                    throw APIError(status: 400, "limit must be 1...10000", field: "limit")
                }
                limit = number
            default:
                throw APIError(status: 400, "unknown query parameter \(key)", field: String(key))
            }
        }
        return (offset, limit)
    }

    /// Runs CPU-heavy `work` on a dispatch queue and awaits it, so that it does not hold a cooperative thread.
    static func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}
