import Foundation
import Postgres

/// A second connection that LISTENs for new work, so a daemon can wait on its socket
/// (with ZeroMQ's poller) instead of polling the database.
public final class WorkListener {
    private let connection: Connection

    /// Connects (`conninfo` nil: the PG* variables) and subscribes to `JobStore.workChannel`.
    public init(conninfo: String?) throws {
        connection = try Connection(conninfo)
        try connection.listen(JobStore.workChannel)
    }

    /// The socket to wait on.
    public var socket: Int32 { connection.socket }

    /// Reads what arrived; true if there was at least one notification.
    public func drain() throws -> Bool {
        try !connection.drainNotifications().isEmpty
    }
}

extension JobStore {
    /// A store on a new connection (`conninfo` nil: the PG* variables).
    public convenience init(conninfo: String?) throws {
        self.init(connection: try Connection(conninfo))
    }

    /// True when `error` means the database connection is gone (reconnect), rather than a failed statement.
    public static func isConnectionFailure(_ error: Error) -> Bool {
        guard let error = error as? PostgresError else { return false }
        // Client-side errors (no SQLSTATE), connection exceptions (08), operator intervention such as a shutdown (57).
        return error.sqlState.isEmpty || error.sqlState.hasPrefix("08") || error.sqlState.hasPrefix("57")
    }
}
