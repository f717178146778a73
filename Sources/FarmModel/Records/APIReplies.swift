/// The small answers of the HTTP API that are not listings, shared by the server (which encodes them) and the
/// `farm` CLI (which decodes them).

/// The answer to `POST /v1/jobs`: the new job's id and how many tasks it has.
public struct SubmitReply: Codable, Sendable, Equatable {
    /// The job's id.
    public var id: Int64
    /// Its tasks.
    public var tasks: Int

    /// Makes a reply.
    public init(id: Int64, tasks: Int) {
        self.id = id
        self.tasks = tasks
    }
}

/// The answer to a job action (`POST /v1/jobs/{id}/{action}`): the job's counts after it, and for `retry` how many
/// failed tasks went back to the queue.
public struct JobActionReply: Codable, Sendable, Equatable {
    /// The job's id.
    public var id: Int64
    /// Its tasks by state after the action.
    public var counts: TaskCounts
    /// Failed tasks requeued (`retry` only; absent otherwise).
    public var requeued: Int?
}

/// The answer to a worker action (`POST /v1/workers/{name}/{action}`): the state it set.
public struct WorkerActionReply: Codable, Sendable, Equatable {
    /// The worker's name.
    public var name: String
    /// Its state now.
    public var state: WorkerStatus

    /// Makes a reply.
    public init(name: String, state: WorkerStatus) {
        self.name = name
        self.state = state
    }
}

/// The body of `POST /v1/tokens`: the role and label of the token to make.
public struct TokenRequest: Codable, Sendable, Equatable {
    /// What the token may do.
    public var role: TokenRole
    /// A label for it.
    public var name: String
    /// Whose jobs it submits and sees; nil: the owner named as the token.
    public var owner: String?

    /// Makes a request.
    public init(role: TokenRole, name: String, owner: String? = nil) {
        self.role = role
        self.name = name
        self.owner = owner
    }
}

/// The answer to `POST /v1/tokens`: the new token with its secret, shown this once.
public struct CreatedToken: Codable, Sendable, Equatable {
    /// The token's row id.
    public var id: Int64
    /// The secret (64 hex digits).
    public var token: String
    /// What it may do.
    public var role: TokenRole
    /// Its label.
    public var name: String
    /// Whose jobs it submits and sees.
    public var owner: String

    /// Makes a reply.
    public init(id: Int64, token: String, role: TokenRole, name: String, owner: String) {
        self.id = id
        self.token = token
        self.role = role
        self.name = name
        self.owner = owner
    }
}

/// The answer to `POST /v1/tokens/{id}/revoke`.
public struct RevokedToken: Codable, Sendable, Equatable {
    /// The token's row id.
    public var id: Int64
    /// Always true: a token that could not be revoked is a 404.
    public var revoked: Bool

    /// Makes a reply.
    public init(id: Int64, revoked: Bool = true) {
        self.id = id
        self.revoked = revoked
    }
}

/// The body of every HTTP API error: `{"error": …, "field": …, "line": …}` (field and line only when known).
public struct ErrorReply: Codable, Sendable, Equatable {
    /// What went wrong, in one line.
    public var error: String
    /// The request field at fault, when there is one.
    public var field: String?
    /// The spec line at fault, when known.
    public var line: Int?

    /// Makes a reply.
    public init(error: String, field: String? = nil, line: Int? = nil) {
        self.error = error
        self.field = field
        self.line = line
    }
}

/// The answer to `POST /v1/images`: the stored image's SHA-256, which a spec names as `init_image`, `mask` or
/// `control_image`, and its size.
public struct StoredInput: Codable, Sendable, Equatable {
    /// The image's SHA-256 in hex.
    public var sha256: String
    /// Its width in pixels, from its header.
    public var width: Int
    /// Its height in pixels.
    public var height: Int

    /// Makes a reply.
    public init(sha256: String, width: Int, height: Int) {
        self.sha256 = sha256
        self.width = width
        self.height = height
    }
}
