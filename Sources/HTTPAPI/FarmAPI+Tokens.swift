import FarmModel
import Foundation
import Hummingbird
import JobStore

extension FarmAPI {
    /// `/v1/tokens…`, admin only: list (never the secrets), create (the secret is in that answer only), revoke.
    func addTokenRoutes(admin: APIRoutes) {
        let pool = self.pool
        admin.on(.get, "tokens") { _, _ in
            try Self.json(try await pool.run { try $0.tokens() })
        }
        admin.on(.post, "tokens") { request, _ in
            let asked = try Self.tokenRequest(try await Self.collect(request.body))
            let created = try await pool.run { try $0.createToken(role: asked.role, name: asked.name, owner: asked.owner) }
            let owner = asked.owner ?? asked.name
            return try Self.json(
                CreatedToken(id: created.id, token: created.token, role: asked.role, name: asked.name, owner: owner), status: 201)
        }
        // `:token` is the token's row id, not its secret.
        admin.on(.post, "tokens/:token/revoke") { _, context in
            let id = try context.pathID("token")
            guard try await pool.run({ try $0.revokeToken(id: id) }) else {
                throw APIError(status: 404, "no unrevoked token has id \(id)")
            }
            return try Self.json(RevokedToken(id: id))
        }
    }

    /// The body of `POST /v1/tokens`, `{"role": "submit" | "admin", "name": "..."}`, checked field by field so that
    /// a 400 names the field at fault.
    static func tokenRequest(_ data: Data) throws -> TokenRequest {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: data) else {
            throw APIError(status: 400, "the body must be a JSON object {\"role\": \"submit\"|\"admin\", \"name\": \"...\"}", field: "body")
        }
        if let unknown = object.keys.sorted().first(where: { !["role", "name", "owner"].contains($0) }) {
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
        var owner: String?
        switch object["owner"] {
        case nil, .null?: owner = nil
        case .string(let text)? where text.count <= 200: owner = text
        default: throw APIError(status: 400, "owner must be a string of at most 200 characters", field: "owner")
        }
        return TokenRequest(role: role, name: name, owner: owner)
    }
}
