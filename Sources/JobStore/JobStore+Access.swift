import FarmModel
import Foundation
import Postgres

/// API tokens and the workers' key allow-list.
extension JobStore {
    /// Makes a token for `role` belonging to `owner` (nil: the owner named as the token): returns its id and the
    /// secret (64 hex digits), which is stored only as a SHA-256.
    public func createToken(role: TokenRole, name: String, owner: String? = nil) throws -> (id: Int64, token: String) {
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = UInt8.random(in: .min ... .max, using: &generator) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        let id: Int64 = try connection.query(
            """
            INSERT INTO api_tokens (sha256, role, name, owner) VALUES ($1, $2, $3, $4) RETURNING id
            """, [Data(SHA256.digest(of: Data(token.utf8))), role.rawValue, name, owner ?? name]
        ).single().decode("id")
        return (id, token)
    }

    /// The role of a token that exists and is not revoked; nil otherwise.
    public func tokenRole(_ token: String) throws -> TokenRole? {
        let rows = try connection.query(
            "SELECT role FROM api_tokens WHERE sha256 = $1 AND revoked_at IS NULL",
            [Data(SHA256.digest(of: Data(token.utf8)))]
        ).rows
        return try rows.first.flatMap { TokenRole(rawValue: try $0.decode("role", as: String.self)) }
    }

    /// The role and owner of a token that exists and is not revoked; nil otherwise.
    public func tokenGrant(_ token: String) throws -> TokenGrant? {
        let rows = try connection.query(
            "SELECT role, owner FROM api_tokens WHERE sha256 = $1 AND revoked_at IS NULL",
            [Data(SHA256.digest(of: Data(token.utf8)))]
        ).rows
        return try rows.first.flatMap { row in
            try TokenRole(rawValue: try row.decode("role", as: String.self)).map { TokenGrant(role: $0, owner: try row.decode("owner")) }
        }
    }

    /// Every token, without secrets, oldest first.
    public func tokens() throws -> [TokenRecord] {
        try records(
            TokenRecord.self,
            """
            SELECT coalesce(json_agg(json_build_object(
                       'id', id, 'role', role, 'name', name, 'owner', owner, 'created', created_at::text, 'revoked', revoked_at::text) ORDER BY id),
                   '[]') AS record
            FROM api_tokens
            """)
    }

    /// Revokes a token; returns false when no unrevoked token has that id.
    @discardableResult
    public func revokeToken(id: Int64) throws -> Bool {
        try connection.query("UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", [id]).affectedRows == 1
    }

    /// Puts a worker key on the allow-list (again, if it was revoked).
    public func allowWorkerKey(_ publicKey: String, name: String) throws {
        try connection.query(
            """
            INSERT INTO worker_keys (public_key, name) VALUES ($1, $2)
            ON CONFLICT (public_key) DO UPDATE SET name = EXCLUDED.name, revoked_at = NULL, created_at = now()
            """, [publicKey, name])
    }

    /// Takes a key off the allow-list; returns false when it was not on it.
    @discardableResult
    public func revokeWorkerKey(_ publicKey: String) throws -> Bool {
        try connection.query(
            "UPDATE worker_keys SET revoked_at = now() WHERE public_key = $1 AND revoked_at IS NULL",
            [publicKey]
        ).affectedRows == 1
    }

    /// True when `publicKey` is allowed and not revoked.
    public func isWorkerKeyAllowed(_ publicKey: String) throws -> Bool {
        try !connection.query("SELECT 1 FROM worker_keys WHERE public_key = $1 AND revoked_at IS NULL", [publicKey]).rows.isEmpty
    }

    /// Every key ever allowed, oldest first.
    public func workerKeys() throws -> [WorkerKeyRecord] {
        try records(
            WorkerKeyRecord.self,
            """
            SELECT coalesce(json_agg(json_build_object(
                       'public_key', public_key, 'name', name, 'created', created_at::text, 'revoked', revoked_at::text)
                       ORDER BY created_at, public_key), '[]') AS record
            FROM worker_keys
            """)
    }
}
