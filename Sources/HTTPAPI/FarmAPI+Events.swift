import FarmModel
import Foundation
import Hummingbird
import JobStore

extension FarmAPI {
    /// Seconds between `: keep-alive` comments on an event stream.
    static let keepAliveSeconds: UInt64 = 15
    /// Seconds between checks that an event stream's token is still valid: a revoked token's stream ends.
    static let tokenCheckSeconds: UInt64 = 2

    /// `GET /v1/events[?job=ID]`, for a submit token or above: the farm's live events (a submit token's, of its
    /// owner's jobs only).
    func addEventRoutes(submit: APIRoutes) {
        let pool = self.pool
        submit.on(.get, "events") { request, context in
            var job: Int64?
            for (key, value) in request.uri.queryParameters {
                guard key == "job" else { throw APIError(status: 400, "unknown query parameter \(key)", field: String(key)) }
                guard let id = Int64(String(value)), id > 0 else { throw APIError(status: 400, "job must be a positive integer", field: "job") }
                job = id
            }
            let scope = context.scope
            if let job, let scope, try await pool.run({ try $0.jobOwner(job) }) != scope {
                throw APIError(status: 404, "job \(job) does not exist")
            }
            return streamEvents(job: job, scope: scope, token: AuthMiddleware.bearerToken(request) ?? "")
        }
    }

    /// Server-sent events until the client goes away or its token is revoked, with a keep-alive comment every
    /// 15 s; with a `scope`, only the events of that owner's jobs. A client that does not read holds at most
    /// `FarmEvents.subscriberBudgetBytes`.
    func streamEvents(job: Int64?, scope: String?, token: String) -> Response {
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
            // Whether each job seen so far is the scope's: a job's owner never changes, so one look-up per job.
            var visible: [Int64: Bool] = [:]
            for await event in subscription.events {
                if let scope {
                    if visible[event.job] == nil, let owner = try? await pool.run({ try $0.jobOwner(event.job) }) {
                        visible[event.job] = owner == scope
                    }
                    guard visible[event.job] == true else { continue }
                }
                try await writer.write(ByteBuffer(string: event.serverSentEvent))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}
