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

/// A few `DatabaseQueue`s; each request goes to the one with the least work waiting, so one slow statement
/// (a million-task submit, a big cancel) holds up only its own queue, not every request that comes after it.
final class DatabasePool: @unchecked Sendable {
    private let queues: [DatabaseQueue]
    private let lock = NSLock()
    /// Requests handed to each queue and not yet answered.
    private var pending: [Int]

    /// Makes `size` queues on `conninfo`.
    init(conninfo: String?, size: Int) {
        queues = (0..<max(1, size)).map { DatabaseQueue(conninfo: conninfo, label: "farm.http.db.\($0)") }
        pending = Array(repeating: 0, count: queues.count)
    }

    /// Runs `body` on the least busy queue.
    func run<T: Sendable>(_ body: @escaping @Sendable (JobStore) throws -> T) async throws -> T {
        let index = lock.withLock { () -> Int in
            let index = pending.indices.min { pending[$0] < pending[$1] } ?? 0
            pending[index] += 1
            return index
        }
        defer { lock.withLock { pending[index] -= 1 } }
        return try await queues[index].run(body)
    }
}
