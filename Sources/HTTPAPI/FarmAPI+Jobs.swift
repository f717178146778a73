import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import JobSpec
import JobStore

extension FarmAPI {
    /// Fields of a spec that query parameters may fill (as the CLI's flags do).
    static let overrideFields: Set<String> = [
        "name", "model", "sampler", "cfg", "width", "height", "steps", "negative", "refiner", "refiner_switch", "vae", "loras",
    ]

    /// `/v1/jobs…` and `/v1/tasks/{task}/image`: a submit token lists, submits and reads jobs and images; only an
    /// admin token steers a job.
    func addJobRoutes(submit: APIRoutes, admin: APIRoutes) {
        let pool = self.pool
        submit.on(.get, "jobs") { _, _ in
            try Self.json(try await pool.run { try $0.jobs() })
        }
        submit.on(.post, "jobs") { request, context in
            try await self.submit(request, role: context.role)
        }
        submit.on(.get, "jobs/:job") { _, context in
            let job = try context.pathID("job")
            guard let detail = try await pool.run({ try $0.jobDetail(job) }) else {
                throw APIError(status: 404, "job \(job) does not exist")
            }
            return try Self.json(detail)
        }
        submit.on(.get, "jobs/:job/images") { _, context in
            let job = try context.pathID("job")
            let images = try await pool.run { store -> [ImageRecord]? in
                guard try store.jobExists(job) else { return nil }
                return try store.imageList(job: job)
            }
            guard let images else { throw APIError(status: 404, "job \(job) does not exist") }
            return try Self.json(images)
        }
        submit.on(.get, "tasks/:task/image") { _, context in
            let task = try context.pathID("task")
            guard let png = try await pool.run({ try $0.image(task: task) }) else {
                throw APIError(status: 404, "task \(task) has no image")
            }
            // nosniff (NoSniffMiddleware): a browser must never read stored bytes as anything but the PNG they are declared to be.
            return Response(status: .ok, headers: [.contentType: "image/png"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
        }
        for action in JobAction.allCases {
            admin.on(.post, "jobs/:job/\(action.rawValue)") { _, context in
                let job = try context.pathID("job")
                guard let reply = try await pool.run({ try $0.perform(action, job: job) }) else {
                    throw APIError(status: 404, "job \(job) does not exist")
                }
                return try Self.json(reply)
            }
        }
    }

    /// `POST /v1/jobs`: parses the body as a spec in `?format=` and queues it; a token below admin may not ask
    /// for a priority above `maxSubmitPriority`.
    func submit(_ request: Request, role: TokenRole?) async throws -> Response {
        var format = "yaml"
        var overrides: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            if key == "format" {
                format = String(value)
                guard ["yaml", "json", "jsonl", "csv", "txt"].contains(format) else {
                    throw APIError(status: 400, "format must be yaml, json, jsonl, csv or txt, got \(format)", field: "format")
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
            try store.enqueue(name: spec.name, model: spec.model, maxAttempts: spec.maxAttempts, priority: spec.priority, tasks: spec.tasks)
        }
        return try Self.json(SubmitReply(id: id, tasks: spec.tasks.count), status: 201)
    }

    /// Runs CPU-heavy `work` on a dispatch queue and awaits it, so that it does not hold a cooperative thread.
    static func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
}
