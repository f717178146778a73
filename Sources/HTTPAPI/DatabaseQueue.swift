import Foundation
import JobStore
import Postgres

/// One PostgreSQL connection owned by one serial dispatch queue: libpq's blocking calls run
/// there, never on NIO's event loops or Swift's cooperative pool, and callers await the result.
final class DatabaseQueue: @unchecked Sendable {
    private let queue: DispatchQueue
    private let conninfo: String?
    /// Touched only on `queue`.
    private var store: JobStore?

    /// Makes a queue that connects with `conninfo` on first use (and again after a lost connection).
    init(conninfo: String?, label: String) {
        self.conninfo = conninfo
        self.queue = DispatchQueue(label: label)
    }

    /// Runs `body` with the store on this queue's thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable (JobStore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                do {
                    let store = try self.store ?? JobStore(connection: Connection(self.conninfo))
                    self.store = store
                    do {
                        continuation.resume(returning: try body(store))
                    } catch let error as PostgresError where error.sqlState.isEmpty || error.sqlState.hasPrefix("08") {
                        // The connection broke (server restart, network): connect afresh next time.
                        self.store = nil
                        continuation.resume(throwing: error)
                    }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

/// A few `DatabaseQueue`s handed out in turn, so slow queries do not hold up every request.
final class DatabasePool: @unchecked Sendable {
    private let queues: [DatabaseQueue]
    private let lock = NSLock()
    private var next = 0

    /// Makes `size` queues on `conninfo`.
    init(conninfo: String?, size: Int) {
        queues = (0..<max(1, size)).map { DatabaseQueue(conninfo: conninfo, label: "farm.http.db.\($0)") }
    }

    /// Runs `body` on the next queue in turn.
    func run<T: Sendable>(_ body: @escaping @Sendable (JobStore) throws -> T) async throws -> T {
        let queue = lock.withLock { () -> DatabaseQueue in
            defer { next = (next + 1) % queues.count }
            return queues[next]
        }
        return try await queue.run(body)
    }
}
