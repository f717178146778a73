import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import JobSpec
import JobStore
import Logging

/// Routes `/v1` requests, checks tokens and answers in JSON.
struct APIResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let pool: DatabasePool
    let events: FarmEvents
    let metrics: (@Sendable () -> String)?
    /// The highest priority a submit token's job may ask for.
    let maxSubmitPriority: Int
    /// Seconds between `: keep-alive` comments on an event stream.
    static let keepAliveSeconds: UInt64 = 15
    /// Seconds between checks that an event stream's token is still valid: a revoked token's stream ends.
    static let tokenCheckSeconds: UInt64 = 2

    /// The routes: each needs a role and answers a request.
    enum Route {
        case listJobs, submitJob
        case job(Int64)
        case jobAction(Int64, JobAction)
        case jobImages(Int64)
        case taskImage(Int64)
        case listWorkers
        case workerAction(String, OperatorAction)
        case events(Int64?)
        case listTokens, createToken
        case revokeToken(Int64)
        /// Prometheus metrics, outside /v1 and without a token, as scrapers expect.
        case metrics

        /// The least role that may call it.
        var role: TokenRole {
            switch self {
            case .listJobs, .submitJob, .job, .jobImages, .taskImage, .events: return .submit
            case .jobAction, .listWorkers, .workerAction, .listTokens, .createToken, .revokeToken, .metrics: return .admin
            }
        }
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        do {
            let route = try Self.route(request)
            if case .metrics = route { return try await metricsPage() }
            let granted = try await authorize(request, for: route.role)
            return try await answer(route, request, role: granted)
        } catch let error as APIError {
            return Self.json(error.json, status: error.status)
        } catch let error as JobSpecError {
            return Self.json(APIError(status: 400, error.description, field: error.field ?? "body", line: error.line).json, status: 400)
        } catch let failure as ValidationFailure {
            return Self.json(APIError(status: 400, failure.description, field: failure.field).json, status: 400)
        } catch {
            return Self.json(APIError(status: 500, "internal error: \(error)").json, status: 500)
        }
    }

    /// Finds the route of a request, or throws 404 (405 for a known path with another method).
    static func route(_ request: Request) throws -> Route {
        let parts = request.uri.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let get = request.method == .get
        let post = request.method == .post
        func id(_ text: String, _ what: String) throws -> Int64 {
            guard let value = Int64(text), value > 0 else { throw APIError(status: 404, "no \(what) \(text)") }
            return value
        }
        var route: Route?
        var pathKnown = true
        if parts == ["metrics"] {
            guard get else { throw APIError(status: 405, "/metrics takes GET") }
            return .metrics
        }
        switch parts.count > 1 && parts[0] == "v1" ? Array(parts.dropFirst()) : [] {
        case ["jobs"]: route = get ? .listJobs : post ? .submitJob : nil
        case let p where p.count == 2 && p[0] == "jobs": route = get ? .job(try id(p[1], "job")) : nil
        case let p where p.count == 3 && p[0] == "jobs" && p[2] == "images": route = get ? .jobImages(try id(p[1], "job")) : nil
        case let p where p.count == 3 && p[0] == "jobs" && JobAction(rawValue: p[2]) != nil:
            route = post ? .jobAction(try id(p[1], "job"), JobAction(rawValue: p[2])!) : nil
        case let p where p.count == 3 && p[0] == "tasks" && p[2] == "image": route = get ? .taskImage(try id(p[1], "task")) : nil
        case ["workers"]: route = get ? .listWorkers : nil
        case ["events"]:
            var job: Int64?
            for (key, value) in request.uri.queryParameters {
                guard key == "job" else { throw APIError(status: 400, "unknown query parameter \(key)", field: String(key)) }
                guard let id = Int64(String(value)), id > 0 else { throw APIError(status: 400, "job must be a positive integer", field: "job") }
                job = id
            }
            route = get ? .events(job) : nil
        case let p where p.count == 3 && p[0] == "workers" && OperatorAction(rawValue: p[2]) != nil:
            route = post ? .workerAction(p[1], OperatorAction(rawValue: p[2])!) : nil
        case ["tokens"]: route = get ? .listTokens : post ? .createToken : nil
        case let p where p.count == 3 && p[0] == "tokens" && p[2] == "revoke": route = post ? .revokeToken(try id(p[1], "token")) : nil
        default: pathKnown = false
        }
        guard let route else {
            if pathKnown { throw APIError(status: 405, "\(request.method) is not allowed on \(request.uri.path)") }
            throw APIError(status: 404, "no route \(request.method) \(request.uri.path)")
        }
        return route
    }

    /// Checks the bearer token: 401 when missing, unknown or revoked; 403 when its role is too small.
    /// The request's bearer token, if it has one.
    static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else { return nil }
        return header.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
    }

    /// Checks the request's token for `role`; returns the role the token has.
    func authorize(_ request: Request, for role: TokenRole) async throws -> TokenRole {
        guard let token = Self.bearerToken(request) else {
            throw APIError(status: 401, "missing bearer token (Authorization: Bearer TOKEN)")
        }
        guard let granted = try await pool.run({ try $0.tokenRole(token) }) else {
            throw APIError(status: 401, "invalid or revoked token")
        }
        if role == .admin && granted != .admin { throw APIError(status: 403, "this route needs an admin token") }
        return granted
    }

    func answer(_ route: Route, _ request: Request, role: TokenRole) async throws -> Response {
        switch route {
        case .metrics:
            return try await metricsPage()
        case .listJobs:
            return Self.json(try Self.encode(try await pool.run { try $0.jobs() }))
        case .job(let job):
            guard let detail = try await pool.run({ try $0.jobDetail(job) }) else {
                throw APIError(status: 404, "job \(job) does not exist")
            }
            return Self.json(try Self.encode(detail))
        case .submitJob:
            return try await submit(request, role: role)
        case .jobAction(let job, let action):
            guard let reply = try await pool.run({ try $0.perform(action, job: job) }) else {
                throw APIError(status: 404, "job \(job) does not exist")
            }
            return Self.json(try Self.encode(reply))
        case .jobImages(let job):
            let images = try await pool.run { store -> [ImageRecord]? in
                guard try store.jobExists(job) else { return nil }
                return try store.imageList(job: job)
            }
            guard let images else { throw APIError(status: 404, "job \(job) does not exist") }
            return Self.json(try Self.encode(images))
        case .taskImage(let task):
            guard let png = try await pool.run({ try $0.image(task: task) }) else {
                throw APIError(status: 404, "task \(task) has no image")
            }
            // nosniff: a browser must never read stored bytes as anything but the PNG they are declared to be.
            return Response(
                status: .ok, headers: [.contentType: "image/png", FarmHTTPServer.noSniff: "nosniff"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
        case .events(let job):
            return streamEvents(job: job, token: Self.bearerToken(request) ?? "")
        case .listWorkers:
            return Self.json(try Self.encode(try await pool.run { try $0.workers() }))
        case .listTokens:
            return Self.json(try Self.encode(try await pool.run { try $0.tokens() }))
        case .createToken:
            // The secret is in this answer only.
            let asked = try Self.tokenRequest(try await Self.collect(request.body))
            let created = try await pool.run { try $0.createToken(role: asked.role, name: asked.name) }
            return Self.json(try Self.encode(CreatedToken(id: created.id, token: created.token, role: asked.role, name: asked.name)), status: 201)
        case .revokeToken(let id):
            guard try await pool.run({ try $0.revokeToken(id: id) }) else {
                throw APIError(status: 404, "no unrevoked token has id \(id)")
            }
            return Self.json(try Self.encode(RevokedToken(id: id)))
        case .workerAction(let worker, let action):
            guard try await pool.run({ try $0.setWorkerState(worker, action.status) }) else {
                throw APIError(status: 404, "worker \(worker) is not known to the farm")
            }
            return Self.json(try Self.encode(WorkerActionReply(name: worker, state: action.status)))
        }
    }

    /// `GET /v1/events`: server-sent events until the client goes away or its token is revoked, with a keep-alive
    /// comment every 15 s. A client that does not read holds at most `FarmEvents.subscriberBudgetBytes`.
    func streamEvents(job: Int64?, token: String) -> Response {
        let subscription = events.subscribe(job: job)
        let pool = self.pool
        let keepAlive = Task {
            var sinceKeepAlive: UInt64 = 0
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: Self.tokenCheckSeconds * 1_000_000_000)
                if Task.isCancelled { break }
                // A database error keeps the stream: only an answer that the token is not valid ends it.
                if let role = try? await pool.run({ try $0.tokenRole(token).map { [$0] } ?? [] }), role.isEmpty {
                    subscription.cancel()
                    break
                }
                sinceKeepAlive += Self.tokenCheckSeconds
                if sinceKeepAlive >= Self.keepAliveSeconds {
                    subscription.keepAlive()
                    sinceKeepAlive = 0
                }
            }
        }
        let body = ResponseBody { writer in
            defer {
                keepAlive.cancel()
                subscription.cancel()
            }
            // An opening comment, so clients see the headers and the stream at once.
            try await writer.write(ByteBuffer(string: ": connected\n\n"))
            for await event in subscription.events {
                try await writer.write(ByteBuffer(string: event.serverSentEvent))
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", FarmHTTPServer.noSniff: "nosniff"],
            body: body)
    }

    /// Runs CPU-heavy `work` on a dispatch queue and awaits it, so that it does not hold a cooperative thread.
    static func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Fields of a spec that query parameters may fill (as the CLI's flags do).
    static let overrideFields: Set<String> = ["name", "model", "sampler", "cfg", "width", "height", "steps", "negative"]

    /// `POST /v1/jobs`: parses the body as a spec in `?format=` and queues it.
    func submit(_ request: Request, role: TokenRole) async throws -> Response {
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
        return Self.json(try Self.encode(SubmitReply(id: id, tasks: spec.tasks.count)), status: 201)
    }

    /// Reads a body of at most `FarmHTTPServer.maxBodyBytes`; a larger one is read to its end
    /// (so the client sees the answer) unless it passes four times that, and gets 413.
    static func collect(_ body: RequestBody) async throws -> Data {
        var data = Data()
        var total = 0
        for try await buffer in body {
            total += buffer.readableBytes
            if total <= FarmHTTPServer.maxBodyBytes {
                data.append(contentsOf: buffer.readableBytesView)
            } else if total > 4 * FarmHTTPServer.maxBodyBytes {
                break
            }
        }
        guard total <= FarmHTTPServer.maxBodyBytes else {
            throw APIError(status: 413, "the body is larger than \(FarmHTTPServer.maxBodyBytes >> 20) MiB", field: "body")
        }
        return data
    }

    /// The body of `POST /v1/tokens`, `{"role": "submit" | "admin", "name": "..."}`, checked field by field so that
    /// a 400 names the field at fault.
    static func tokenRequest(_ data: Data) throws -> TokenRequest {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: data) else {
            throw APIError(status: 400, "the body must be a JSON object {\"role\": \"submit\"|\"admin\", \"name\": \"...\"}", field: "body")
        }
        if let unknown = object.keys.sorted().first(where: { !["role", "name"].contains($0) }) {
            throw APIError(status: 400, "unknown field \(unknown)", field: unknown)
        }
        guard let role = object["role"]?.string.flatMap(TokenRole.init(rawValue:)) else {
            throw APIError(status: 400, "role must be submit or admin", field: "role")
        }
        let name: String
        switch object["name"] {
        case nil, .null?: name = ""
        case .string(let text)?: name = text
        default: throw APIError(status: 400, "name must be a string of at most 200 characters", field: "name")
        }
        guard name.count <= 200 else { throw APIError(status: 400, "name must be a string of at most 200 characters", field: "name") }
        return TokenRequest(role: role, name: name)
    }

    /// The encoder of every JSON answer: sorted keys, compact.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    /// JSON bytes (sorted keys) of a record.
    static func encode<Value: Encodable>(_ value: Value) throws -> Data {
        try encoder.encode(value)
    }

    /// A JSON response.
    static func json(_ body: Data, status: Int = 200) -> Response {
        Response(
            status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json", FarmHTTPServer.noSniff: "nosniff"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
