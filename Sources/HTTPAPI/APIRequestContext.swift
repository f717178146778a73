import FarmModel
import Hummingbird

/// The request context of the API's routes: Hummingbird's core context and the role of the
/// request's bearer token, which `AuthMiddleware` sets once it has checked the token.
public struct APIRequestContext: RequestContext {
    /// Hummingbird's per-request storage (logger, path parameters).
    public var coreContext: CoreRequestContextStorage
    /// What the request's token grants (role and owner); nil until `AuthMiddleware` has run (and on `/metrics`).
    public var grant: TokenGrant?

    /// The role the request's token grants; nil until `AuthMiddleware` has run (and on `/metrics`).
    public var role: TokenRole? { grant?.role }

    /// The owner whose jobs alone this request may see: a submit token's owner; nil for an admin token (every job).
    public var scope: String? { grant?.role == .admin ? nil : grant?.owner }

    /// Makes the context of a new request.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    /// The path parameter `name` (`job`, `task`, `token`) as a row id; 404 when it is not a positive integer,
    /// as for a path that names nothing.
    func pathID(_ name: String) throws -> Int64 {
        let text = parameters.get(name) ?? ""
        guard let value = Int64(text), value > 0 else { throw APIError(status: 404, "no \(name) \(text)") }
        return value
    }
}
