import Foundation
import Postgres

/// Cancelling a job, at the size of a million tasks.
///
/// The cancel is seen at once: one short transaction marks the job cancelled (nothing claims it from then
/// on, and its counts show its queued tasks as cancelled: `countsJSON`) and cancels its running tasks. Its
/// queued task rows are rewritten after that, and that is slow: a task's state is in the queue indexes'
/// predicates, so every row gets a new version and two index entries (about 9 µs a row here), and PostgreSQL
/// runs one UPDATE on one core. So they are cancelled in ranges of their index, over several connections at
/// once. Every step commits on its own and keeps the job's counts right (the statement trigger); a cancel
/// that is cut short leaves a cancelled job with queued task rows that nothing claims, and is finished by
/// running it again or by `finishInterruptedCancels`.
extension JobStore {
    /// The most connections one cancel uses: one per core, as the database usually runs on the
    /// coordinator's host or one like it (on two cores, four parts took 7.3 s where two took 5.5–6 s).
    static let cancelConnections = min(4, ProcessInfo.processInfo.activeProcessorCount)

    /// Cancels a job: it is no longer claimed, and its queued and running tasks become cancelled
    /// (running ones' results are then dropped). Readers see it cancelled when the first transaction commits;
    /// the call returns when the task rows are rewritten. Running it again finishes a cancel that was cut short.
    public func cancel(job: Int64) throws {
        let taskCount: Int? = try connection.transaction { connection in
            let rows = try connection.query(
                """
                UPDATE jobs j SET state = 'cancelled', finished_at = coalesce(o.finished_at, now())
                FROM (SELECT id, state, CASE WHEN state = 'cancelled' THEN finished_at END AS finished_at
                      FROM jobs WHERE id = $1 FOR UPDATE) o
                WHERE j.id = o.id AND o.state <> 'done'
                RETURNING o.state AS previous, j.task_count
                """, [job]
            ).rows
            guard let row = rows.first else { return nil }
            if try row.decode("previous", as: String.self) != "cancelled" {
                try connection.query("INSERT INTO events (kind, job_id) VALUES ('job.cancelled', $1)", [job])
            }
            try cancelRunning(job: job, connection)
            return try row.decode("task_count")
        }
        guard let taskCount, taskCount > 0 else { return }
        try cancelQueued(job: job, taskCount: taskCount)
        // A claim that read the job as active just before it was cancelled may have committed since.
        try cancelRunning(job: job, connection)
    }

    /// Finishes cancels that were cut short (a client killed mid-way): queued tasks of cancelled jobs
    /// become cancelled. Rows another transaction holds are left to it. Returns how many.
    @discardableResult
    public func finishInterruptedCancels() throws -> Int {
        try connection.query(
            """
            UPDATE tasks SET state = 'cancelled', finished_at = now()
            WHERE id IN (SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id
                         WHERE j.state = 'cancelled' AND j.queued_count > 0 AND t.state = 'queued'
                         FOR UPDATE OF t SKIP LOCKED)
            """
        ).affectedRows
    }

    private func cancelRunning(job: Int64, _ connection: Connection) throws {
        try connection.query(
            """
            UPDATE tasks SET state = 'cancelled', finished_at = now(), lease_owner = NULL, lease_expires = NULL
            WHERE job_id = $1 AND state = 'running'
            """, [job])
    }

    /// Cancels the job's queued tasks in ranges of their index, several connections at once for a large job; then any
    /// past the job's count (none today: indexes run from 0).
    private func cancelQueued(job: Int64, taskCount: Int) throws {
        try cancelQueuedInParts(job: job, taskCount: taskCount)
        try Self.cancelQueued(job: job, from: taskCount, below: Int(Int32.max), connection)
    }

    private func cancelQueuedInParts(job: Int64, taskCount: Int) throws {
        let parts = min(Self.cancelConnections, max(1, taskCount / cancelPartSize))
        let bounds = (0...parts).map { taskCount * $0 / parts }
        let ranges = (0..<parts).map { bounds[$0]..<bounds[$0 + 1] }
        if parts == 1 {
            try Self.cancelQueued(job: job, in: ranges[0], connection)
            return
        }
        let conninfo = connection.conninfo
        let failures = Failures()
        let group = DispatchGroup()
        for range in ranges {
            group.enter()
            // Threads of their own: each blocks in libpq for seconds, which Swift's cooperative pool must not.
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    try Self.cancelQueued(job: job, in: range, try Connection(conninfo))
                } catch {
                    failures.add(error)
                }
            }
        }
        group.wait()
        if let error = failures.first { throw error }
    }

    /// Rows one statement of a cancel changes: the counting trigger's copies of them (old and new) then fit in
    /// `cancelWorkMemory` instead of going through temporary files, and each transaction is short.
    static let cancelChunk = 50_000
    /// Memory for those copies, per connection and statement.
    static let cancelWorkMemory = "64MB"

    /// Cancels the job's queued tasks with indexes in `range`, `cancelChunk` at a time.
    private static func cancelQueued(job: Int64, in range: Range<Int>, _ connection: Connection) throws {
        for lower in stride(from: range.lowerBound, to: range.upperBound, by: cancelChunk) {
            try cancelQueued(job: job, from: lower, below: min(lower + cancelChunk, range.upperBound), connection)
        }
    }

    /// Cancels the job's queued tasks with indexes from `lower` up to `upper` in one transaction of its own.
    private static func cancelQueued(job: Int64, from lower: Int, below upper: Int, _ connection: Connection) throws {
        try connection.transaction { connection in
            try connection.query("SET LOCAL work_mem = '\(cancelWorkMemory)'")
            try connection.query(
                """
                UPDATE tasks SET state = 'cancelled', finished_at = now()
                WHERE job_id = $1 AND state = 'queued' AND index >= $2 AND index < $3
                """, [job, lower, upper])
        }
    }
}

/// Errors from the parts of a cancel, collected across threads.
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [Error] = []

    func add(_ error: Error) { lock.withLock { errors.append(error) } }
    var first: Error? { lock.withLock { errors.first } }
}
