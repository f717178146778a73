import FarmModel
import Foundation
import Hummingbird
import JobStore

/// Checks a `/v1` request's bearer token against `api_tokens`: 401 when it is missing, unknown or
/// revoked, 403 when its role is below the route's. Puts the grant (role and owner) into the context.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    /// Where tokens are looked up.
    let pool: DatabasePool
    /// The least role the routes behind it need.
    let least: TokenRole

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token = Self.bearerToken(request) else {
            throw APIError(status: 401, "missing bearer token (Authorization: Bearer TOKEN)")
        }
        guard let granted = try await pool.run({ try $0.tokenGrant(token) }) else {
            throw APIError(status: 401, "invalid or revoked token")
        }
        if least == .admin && granted.role != .admin { throw APIError(status: 403, "this route needs an admin token") }
        var context = context
        context.grant = granted
        return try await next(request, context)
    }

    /// The request's bearer token, if it has one.
    static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else { return nil }
        return header.dropFirst("bearer ".count).trimmingCharacters(in: .whitespaces)
    }
}

/// Answers 404 for a path whose `job`, `task` or `token` id is not a positive integer, before the token is
/// checked: such a path names nothing, as an unknown path does (which the router answers without a token).
struct PathIDMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    /// The path parameters that hold row ids.
    static let idParameters = ["job", "task", "token"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        for name in Self.idParameters where context.parameters.get(name) != nil {
            _ = try context.pathID(name)
        }
        return try await next(request, context)
    }
}
