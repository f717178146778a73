import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import JobSpec

/// Turns every error a route throws into the API's JSON error body `{"error": …, "field": …, "line": …}`:
/// `APIError` as it is, a bad spec (`JobSpecError`, `ValidationFailure`) as 400 naming the field, the router's
/// 404 as 405 when the path is known but not with this method, anything else as 500.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    /// The API's paths, to tell a 405 from a 404.
    let known: KnownPaths

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let failure = apiError(error, request)
            var response = FarmAPI.json(bytes: failure.json, status: failure.status)
            if failure.status == 405, let allowed = known.methods(for: request.uri.path) {
                response.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
            }
            return response
        }
    }

    /// The API error that answers `error`.
    func apiError(_ error: any Error, _ request: Request) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as JobSpecError:
            return APIError(status: 400, error.description, field: error.field ?? "body", line: error.line)
        case let failure as ValidationFailure:
            return APIError(status: 400, failure.description, field: failure.field)
        case let error as HTTPError where error.status == .notFound:
            // Hummingbird's router answers 404 for a known path asked with another method too.
            guard known.methods(for: request.uri.path) != nil else {
                return APIError(status: 404, "no route \(request.method) \(request.uri.path)")
            }
            if request.uri.path == "/metrics" { return APIError(status: 405, "/metrics takes GET") }
            return APIError(status: 405, "\(request.method) is not allowed on \(request.uri.path)")
        case let error as HTTPError:
            return APIError(status: error.status.code, error.body ?? error.status.reasonPhrase)
        default:
            return APIError(status: 500, "internal error: \(error)")
        }
    }
}

/// Sends `X-Content-Type-Options: nosniff` with every answer, so that no body (a stored PNG above all) is
/// sniffed as another type.
struct NoSniffMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[FarmAPI.noSniff] = "nosniff"
        return response
    }
}

/// The API's paths (`v1/jobs/:job`) and the methods each takes, recorded as routes are added: Hummingbird's
/// router answers 404 for a known path asked with another method, where the API answers 405.
final class KnownPaths: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(path: RouterPath, methods: [HTTPRequest.Method])] = []

    /// Records that `path` takes `method`.
    func add(_ path: String, _ method: HTTPRequest.Method) {
        let path = RouterPath(path)
        lock.withLock {
            if let index = entries.firstIndex(where: { $0.path == path }) {
                entries[index].methods.append(method)
            } else {
                entries.append((path, [method]))
            }
        }
    }

    /// Every path as registered (`v1/jobs/:job`) with its methods.
    var all: [(path: String, methods: [String])] {
        lock.withLock { entries.map { ($0.path.description, $0.methods.map(\.rawValue)) } }
    }

    /// The methods a request path takes, or nil when no route has that path.
    func methods(for requestPath: String) -> [HTTPRequest.Method]? {
        let parts = requestPath.split(separator: "/", omittingEmptySubsequences: true)
        return lock.withLock {
            entries.first { entry in
                entry.path.components.count == parts.count && zip(entry.path.components, parts).allSatisfy { $0 ~= $1 }
            }?.methods
        }
    }
}
