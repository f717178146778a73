import FarmModel
import Foundation
import Postgres

/// Counts of a job's tasks by state.
public struct JobProgress: Equatable, Sendable {
    /// Tasks in each state (missing states are zero).
    public var counts: [TaskState: Int]
    /// Tasks in all.
    public var total: Int { counts.values.reduce(0, +) }
    /// True when no task will run again.
    public var isFinished: Bool { counts[.queued, default: 0] == 0 && counts[.running, default: 0] == 0 }
}

/// A stored result image.
public struct StoredImage: Sendable {
    /// The task it belongs to.
    public var taskID: Int64
    /// The task's index within its job.
    public var index: Int
    /// The PNG file's bytes.
    public var png: Data
}

/// What the store did with a result or failure report.
public enum ReportOutcome: Equatable, Sendable {
    /// Stored: it came from the task's current attempt.
    case stored
    /// Dropped: a stale attempt, or the task already finished (first write wins).
    case dropped
}

/// The farm's queries on PostgreSQL: enqueue, claim, progress, complete, fail, requeue.
/// Each operation is one statement or one short transaction.
public final class JobStore {
    /// The connection the store owns.
    public let connection: Connection
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    /// Uses `connection` (which must have the schema applied; see `Migrator`).
    public init(connection: Connection) {
        self.connection = connection
    }

    /// Inserts a job and its tasks (streamed with COPY) in one transaction; returns the job's id.
    public func enqueue(name: String, model: String, maxAttempts: Int = 3, priority: Int = 0,
                        tasks: [TaskParameters]) throws -> Int64 {
        for (position, task) in tasks.enumerated() {
            do { try task.validate() } catch let failure as ValidationFailure {
                throw ValidationFailure(field: "tasks[\(position)].\(failure.field)", message: failure.message)
            }
        }
        return try connection.transaction { connection in
            let job: Int64 = try connection.query("""
                INSERT INTO jobs (name, model, max_attempts, priority, task_count)
                VALUES ($1, $2, $3, $4, $5) RETURNING id
                """, [name, model, maxAttempts, priority, tasks.count]).single().decode("id")
            let encoder = self.encoder
            let lines = tasks.lazy.enumerated().map { position, task -> String in
                let json = String(decoding: (try? encoder.encode(task)) ?? Data("{}".utf8), as: UTF8.self)
                return "\(job)\t\(position)\t\(Connection.copyEscape(json))"
            }
            try connection.copyIn("COPY tasks (job_id, index, parameters) FROM STDIN", rows: lines)
            try connection.query("INSERT INTO events (kind, job_id, detail) VALUES ('job.submitted', $1, $2)",
                                 [job, "\(tasks.count) tasks"])
            try connection.notify("farm_tasks", payload: String(job))
            return job
        }
    }

    /// Leases up to `limit` queued tasks to `workerID` for `leaseSeconds`, one statement
    /// with FOR UPDATE SKIP LOCKED so that several coordinators can share the queue.
    public func claim(workerID: String, limit: Int, leaseSeconds: Double) throws -> [WireMessage.Assignment] {
        guard limit > 0 else { return [] }
        let result = try connection.query("""
            WITH next AS (
                SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id
                WHERE t.state = 'queued' AND j.state = 'active'
                ORDER BY j.priority DESC, t.job_id, t.index
                LIMIT $2
                FOR UPDATE OF t SKIP LOCKED
            )
            UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = $1,
                lease_expires = now() + make_interval(secs => $3), started_at = now(), step = 0
            FROM next WHERE tasks.id = next.id
            RETURNING tasks.id, tasks.attempt, tasks.parameters::text AS parameters
            """, [workerID, limit, leaseSeconds])
        let decoder = JSONDecoder()
        return try result.rows.map { row in
            let json: String = try row.decode("parameters")
            return WireMessage.Assignment(taskID: try row.decode("id"), attempt: try row.decode("attempt"),
                                          parameters: try decoder.decode(TaskParameters.self, from: Data(json.utf8)))
        }
    }

    /// Records progress of the current attempt and extends its lease; stale attempts are ignored.
    @discardableResult
    public func progress(_ report: WireMessage.Progress, leaseSeconds: Double) throws -> Bool {
        try connection.query("""
            UPDATE tasks SET step = $3, total_steps = $4, lease_expires = now() + make_interval(secs => $5)
            WHERE id = $1 AND attempt = $2 AND state = 'running'
            """, [report.taskID, report.attempt, report.step, report.total, leaseSeconds]).affectedRows == 1
    }

    /// Stores a finished image if it belongs to the task's current running attempt
    /// (first write wins; a late duplicate is dropped).
    public func complete(_ header: WireMessage.ResultHeader, png: Data) throws -> ReportOutcome {
        try connection.transaction { connection in
            let updated = try connection.query("""
                UPDATE tasks SET state = 'done', finished_at = now(), lease_owner = NULL, lease_expires = NULL,
                    step = total_steps
                WHERE id = $1 AND attempt = $2 AND state = 'running'
                """, [header.taskID, header.attempt]).affectedRows
            guard updated == 1 else { return .dropped }
            try connection.query("""
                INSERT INTO images (task_id, attempt, png, width, height, seed, sha256)
                VALUES ($1, $2, $3, $4, $5, $6, sha256($3))
                """, [header.taskID, header.attempt, png, header.width, header.height, header.seed])
            try connection.query("""
                INSERT INTO events (kind, job_id, task_id, attempt)
                SELECT 'task.done', job_id, id, attempt FROM tasks WHERE id = $1
                """, [header.taskID])
            return .stored
        }
    }

    /// Records a failed attempt: input errors end the task; host errors requeue it
    /// until the job's attempt limit is spent.
    public func fail(_ failure: WireMessage.Failure) throws -> ReportOutcome {
        let result = try connection.query("""
            UPDATE tasks t SET
                state = CASE WHEN $3 = 'input' OR t.attempt >= j.max_attempts THEN 'failed' ELSE 'queued' END,
                finished_at = CASE WHEN $3 = 'input' OR t.attempt >= j.max_attempts THEN now() END,
                lease_owner = NULL, lease_expires = NULL, error_kind = $3, error_message = $4
            FROM jobs j
            WHERE t.id = $1 AND t.attempt = $2 AND t.state = 'running' AND j.id = t.job_id
            """, [failure.taskID, failure.attempt, failure.kind.rawValue, failure.message])
        return result.affectedRows == 1 ? .stored : .dropped
    }

    /// Puts tasks whose lease ran out back in the queue (or fails them when out of attempts);
    /// returns how many it touched.
    @discardableResult
    public func requeueExpired() throws -> Int {
        try connection.query("""
            UPDATE tasks t SET
                state = CASE WHEN t.attempt >= j.max_attempts THEN 'failed' ELSE 'queued' END,
                finished_at = CASE WHEN t.attempt >= j.max_attempts THEN now() END,
                error_kind = 'host', error_message = 'lease expired on ' || t.lease_owner,
                lease_owner = NULL, lease_expires = NULL
            FROM jobs j
            WHERE t.state = 'running' AND t.lease_expires < now() AND j.id = t.job_id
            """).affectedRows
    }

    /// Counts a job's tasks by state.
    public func progress(job: Int64) throws -> JobProgress {
        let rows = try connection.query("SELECT state, count(*) AS n FROM tasks WHERE job_id = $1 GROUP BY state", [job])
        var counts: [TaskState: Int] = [:]
        for row in rows.rows {
            if let state = TaskState(rawValue: try row.decode("state")) { counts[state] = try row.decode("n") }
        }
        return JobProgress(counts: counts)
    }

    /// The stored images of a job, in task order.
    public func images(job: Int64) throws -> [StoredImage] {
        try connection.query("""
            SELECT t.id, t.index, i.png FROM images i JOIN tasks t ON t.id = i.task_id
            WHERE t.job_id = $1 ORDER BY t.index
            """, [job]).rows.map { row in
            StoredImage(taskID: try row.decode("id"), index: try row.decode("index"), png: try row.decode("png"))
        }
    }

    /// Records a worker's hello (or refreshes it after a reconnect).
    public func registerWorker(_ hello: WireMessage.Hello) throws {
        try connection.query("""
            INSERT INTO workers (id, host, models, slots, state, last_heartbeat)
            VALUES ($1, $2, $3::text[], $4, 'online', now())
            ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, models = EXCLUDED.models,
                slots = EXCLUDED.slots, state = 'online', last_heartbeat = now()
            """, [hello.workerID, hello.host, postgresArray(hello.models), hello.slots])
    }

    /// Notes that a worker is alive.
    public func touchWorker(_ workerID: String) throws {
        try connection.query("UPDATE workers SET last_heartbeat = now() WHERE id = $1", [workerID])
    }

    private func postgresArray(_ values: [String]) -> String {
        let quoted = values.map { value in
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "{" + quoted.joined(separator: ",") + "}"
    }
}
