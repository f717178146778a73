/// A role an API token grants: `submit` may queue jobs and read jobs and images; `admin` may do everything.
public enum TokenRole: String, Codable, Sendable, CaseIterable {
    /// Queue jobs, read jobs and images.
    case submit
    /// Everything, including job controls and worker states.
    case admin
}

/// An API token as listed (its secret is never stored, only its SHA-256): `farm tokens list --json` and `GET /v1/tokens`.
public struct TokenRecord: Codable, Sendable, Equatable {
    /// The token's row id, used to revoke it.
    public var id: Int64
    /// What it may do.
    public var role: TokenRole
    /// A label given at creation.
    public var name: String
    /// Whose jobs it submits and, as a submit token, the only jobs it sees.
    public var owner: String
    /// When it was made (PostgreSQL's text form).
    public var created: String
    /// When it was revoked, if it was (JSON null if not).
    @NullWhenNil public var revoked: String?

}

/// What a valid token grants: its role, and the owner its jobs belong to (a submit token sees only that owner's jobs).
public struct TokenGrant: Sendable, Equatable {
    /// What it may do.
    public var role: TokenRole
    /// Whose jobs it submits and sees.
    public var owner: String

    /// Makes a grant.
    public init(role: TokenRole, owner: String) {
        self.role = role
        self.owner = owner
    }
}
