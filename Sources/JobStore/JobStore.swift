// Module JobStore: every SQL statement the farm runs, and the migrations runner. Imports Postgres and FarmModel.

import FarmModel
import Foundation
import Postgres

/// Counts of a job's tasks by state.
public struct JobProgress: Equatable, Sendable {
    /// Tasks in each state (missing states are zero).
    public var counts: [TaskState: Int]

    /// Makes progress from counts by state.
    public init(counts: [TaskState: Int]) {
        self.counts = counts
    }

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
    /// The seed it was drawn with.
    public var seed: UInt64
    /// The PNG file's bytes.
    public var png: Data
}

/// What the store did with a result or failure report.
public enum ReportOutcome: Equatable, Sendable {
    /// Stored: it came from the task's current, still leased attempt.
    case stored
    /// The task already has its result (first write wins); this duplicate is dropped.
    case alreadyDone
    /// From an attempt that is no longer current (the lease expired and the task moved on), or from a worker
    /// that does not hold the lease; dropped.
    case stale
    /// From the lease holder, but not what the task asked for (another size): not stored; the caller fails the attempt.
    case rejected(String)
}

/// What a worker can run, for claiming: models it has, the VAEs it can swap in and the largest image it takes.
public struct WorkerCapabilities: Sendable {
    /// Model names the worker can load (a task's refiner must be one of them too).
    public var models: [String]
    /// Largest width × height.
    public var maxPixels: Int
    /// VAE names the worker can swap in; nil for a worker that does not render tasks naming a VAE or a refiner
    /// at all (one older than those fields, which would ignore them).
    public var vaes: [String]?
    /// LoRA names the worker has; nil for a worker without a LoRA folder (or older than `loras`): it is given no
    /// task that names LoRAs in its `loras` field.
    public var loras: [String]?
    /// The worker's tags: it is given only tasks whose `require` tags are all among them.
    public var tags: [String]
    /// True for a worker that fetches store models it lacks (`--model-server`): any task naming a stored model fits it.
    public var fetchesModels = false
    /// SHA-256s of the store models in its cache: tasks of those models are claimed before tasks it would fetch for.
    public var modelHashes: [String] = []

    /// Makes capabilities.
    public init(
        models: [String], maxPixels: Int = Limits().maxPixels, vaes: [String]? = nil, loras: [String]? = nil, tags: [String] = []
    ) {
        self.tags = tags
        self.models = models
        self.maxPixels = maxPixels
        self.vaes = vaes
        self.loras = loras
    }
}

/// Retry policy for host failures.
public struct RetryPolicy: Sendable {
    /// Delay before the second attempt; doubled for each attempt after.
    public var baseDelay: Double = 2
    /// Longest delay.
    public var maxDelay: Double = 300
    /// Host failures of one worker within one job before that worker gets none of its tasks.
    public var blocklistAfter = 2

    /// The default policy.
    public init() {}
}

/// The farm's queries on PostgreSQL: enqueue, claim, progress, complete, fail, requeue,
/// and the job controls. Each operation is one statement or one short transaction, and
/// every value travels as a parameter.
public final class JobStore {
    /// The connection the store owns; only JobStore's methods run SQL on it.
    let connection: Connection
    /// How host failures are retried.
    public var retry = RetryPolicy()
    /// Queued tasks a cancel gives each extra connection (below this, one connection does it all).
    public var cancelPartSize = 100_000
    /// The channel NOTIFY'd when tasks become claimable.
    public static let workChannel = "farm_tasks"
    /// Where `complete` writes result images; nil: into the database (`images.png`).
    public var imageDirectory: ImageDirectory?
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    /// Uses `connection` (which must have the schema applied; see `Migrator`).
    public init(connection: Connection) {
        self.connection = connection
    }

    /// Inserts a job and its tasks (streamed with COPY) in one transaction; returns the job's id. `expiresAfter` (seconds
    /// after it finishes) lets retention remove its tasks, images and events; `notify` is POSTed to when it ends.
    public func enqueue(
        name: String, model: String, owner: String = "", maxAttempts: Int = 3, priority: Int = 0,
        expiresAfter: Double? = nil, notify: String? = nil, tasks: [TaskParameters]
    ) throws -> Int64 {
        let limits = Limits()
        try limits.validateJob(name: name, priority: priority, maxAttempts: maxAttempts)
        if let expiresAfter, !(expiresAfter > 0 && expiresAfter <= RetentionPeriod.maxSeconds) {
            throw ValidationFailure(field: "expires_after", message: "must be a positive number of seconds up to ten years")
        }
        let notify = try notify.map { try NotifyURL.validated($0) }
        guard !tasks.isEmpty, tasks.count <= limits.maxTasksPerJob else {
            throw ValidationFailure(field: "tasks", message: "a job has 1…\(limits.maxTasksPerJob) tasks, got \(tasks.count)")
        }
        for (position, task) in tasks.enumerated() {
            do { try task.validate() } catch let failure as ValidationFailure {
                throw ValidationFailure(field: "tasks[\(position)].\(failure.field)", message: failure.message)
            }
        }
        let tasks = try withStoredModelHashes(tasks)
        let job = try connection.transaction { connection in
            let job: Int64 = try connection.query(
                """
                INSERT INTO jobs (name, owner, model, max_attempts, priority, expires_after, notify_url)
                VALUES ($1, $2, $3, $4, $5, make_interval(secs => $6), $7) RETURNING id
                """, [name, owner, model, maxAttempts, priority, expiresAfter, notify]
            ).single().decode("id")
            try self.checkQueuedQuota(owner: owner, adding: tasks.count, connection)
            let encoder = self.encoder
            let lines = tasks.lazy.enumerated().map { position, task -> String in
                let json = String(decoding: (try? encoder.encode(task)) ?? Data("{}".utf8), as: UTF8.self)
                return "\(job)\t\(position)\t\(Connection.copyEscape(json))"
            }
            try connection.copyIn("COPY tasks (job_id, index, parameters) FROM STDIN", rows: lines)
            if tasks.contains(where: { !$0.inputHashes.isEmpty }) {
                // Record which stored images each task uses; a hash that was never stored fails here.
                do {
                    try connection.query(
                        """
                        INSERT INTO task_inputs (task_id, role, sha256)
                        SELECT t.id, r.role, decode(r.hash, 'hex') FROM tasks t
                        CROSS JOIN LATERAL (
                            SELECT 'init_image' AS role, t.parameters->>'init_image' AS hash
                            UNION ALL SELECT 'mask', t.parameters->>'mask'
                            UNION ALL SELECT 'control_image', c->>'image' FROM jsonb_array_elements(coalesce(t.parameters->'controlnets', '[]')) c
                        ) r
                        WHERE t.job_id = $1 AND r.hash IS NOT NULL
                        ON CONFLICT DO NOTHING
                        """, [job])
                } catch let error as PostgresError where error.sqlState == "23503" {
                    throw ValidationFailure(field: "tasks", message: "an input image was not stored first (store it with the job's images)")
                }
            }
            try connection.query(
                "INSERT INTO events (kind, job_id, detail) VALUES ('job.submitted', $1, $2)",
                [job, "\(tasks.count) tasks"])
            try connection.notify(JobStore.workChannel, payload: String(job))
            return job
        }
        // A big job changes the queue's shape at once; without fresh statistics the planner
        // may sort a whole job's tasks on every claim instead of walking the queued index.
        if tasks.count >= 1_000 { try connection.query("ANALYZE tasks") }
        return job
    }

    /// Stores an input image once (content-addressed) and returns its SHA-256 in hex, the
    /// name tasks use for it.
    @discardableResult
    public func storeBlob(_ data: Data) throws -> String {
        try connection.query("INSERT INTO input_blobs (sha256, data) VALUES (sha256($1), $1) ON CONFLICT DO NOTHING", [data])
        return SHA256.hex(of: data)
    }

    /// A stored input image by its SHA-256 in hex.
    public func blob(_ hash: String) throws -> Data? {
        try connection.query("SELECT data FROM input_blobs WHERE sha256 = decode($1, 'hex')", [hash]).rows.first?.decode("data")
    }

    /// Stores an input image once (content-addressed) and attaches it to a task under `role`.
    public func attachInput(task: Int64, role: String, data: Data) throws {
        try connection.transaction { connection in
            try connection.query("INSERT INTO input_blobs (sha256, data) VALUES (sha256($1), $1) ON CONFLICT DO NOTHING", [data])
            try connection.query("INSERT INTO task_inputs (task_id, role, sha256) VALUES ($1, $2, sha256($3))", [task, role, data])
        }
    }

    /// The job a task belongs to, or nil when there is no such task.
    public func jobOfTask(_ task: Int64) throws -> Int64? {
        let result = try connection.query("SELECT job_id FROM tasks WHERE id = $1", [task])
        return try result.rows.first?.decode("job_id")
    }

    /// Pauses a job: no new task of it is claimed (running ones finish).
    public func pause(job: Int64) throws {
        try connection.query("UPDATE jobs SET state = 'paused' WHERE id = $1 AND state = 'active'", [job])
    }

    /// Resumes a paused job.
    public func resume(job: Int64) throws {
        if try connection.query("UPDATE jobs SET state = 'active' WHERE id = $1 AND state = 'paused'", [job]).affectedRows == 1 {
            try connection.notify(JobStore.workChannel, payload: String(job))
        }
    }

    /// Puts a job's failed tasks back in the queue with fresh attempts; returns how many (none for a cancelled job,
    /// whose queue nothing claims).
    @discardableResult
    public func retryFailed(job: Int64) throws -> Int {
        try connection.transaction { connection in
            let count = try connection.query(
                """
                UPDATE tasks SET state = 'queued', attempt = 0, finished_at = NULL, not_before = '-infinity',
                    error_kind = NULL, error_message = NULL
                WHERE job_id = $1 AND state = 'failed' AND EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND state <> 'cancelled')
                """, [job]
            ).affectedRows
            try connection.query("UPDATE jobs SET state = 'active', finished_at = NULL WHERE id = $1 AND state <> 'cancelled'", [job])
            try connection.query("DELETE FROM job_worker_failures WHERE job_id = $1", [job])
            if count > 0 { try connection.notify(JobStore.workChannel, payload: String(job)) }
            return count
        }
    }

    /// Cancels one task if it has not finished.
    public func cancel(task: Int64) throws {
        try connection.query(
            """
            UPDATE tasks SET state = 'cancelled', finished_at = now(), lease_owner = NULL, lease_expires = NULL
            WHERE id = $1 AND state IN ('queued', 'running')
            """, [task])
    }

    /// A job's tasks by state, from the counts kept on the job row (as `jobCounts` reads them).
    public func progress(job: Int64) throws -> JobProgress {
        guard let counts = try jobCounts(job) else { return JobProgress(counts: [:]) }
        return JobProgress(counts: Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, counts[$0]) }.filter { $0.1 > 0 }))
    }

    /// The stored images of a job, in task order, read from the database or from their files.
    public func images(job: Int64) throws -> [StoredImage] {
        try connection.query(
            """
            SELECT t.id, t.index, i.seed::text AS seed, i.png, i.path FROM images i JOIN tasks t ON t.id = i.task_id
            WHERE t.job_id = $1 ORDER BY t.index
            """, [job]
        ).rows.map { row in
            StoredImage(
                taskID: try row.decode("id"), index: try row.decode("index"), seed: try row.decode("seed"),
                png: try Self.png(row))
        }
    }

    /// The PNG of an `images` row read with its `png` and `path` columns: the bytes, or its file's.
    static func png(_ row: Row) throws -> Data {
        if let png = try row.decodeIfPresent("png", as: Data.self) { return png }
        return try ImageDirectory.read(path: try row.decode("path"))
    }

    /// Which of the given tasks were cancelled (so that their workers can stop).
    public func cancelledTasks(among ids: [Int64]) throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        let list = "{" + ids.map(String.init).joined(separator: ",") + "}"
        return try connection.query("SELECT id FROM tasks WHERE id = ANY($1::bigint[]) AND state = 'cancelled'", [list])
            .rows.map { try $0.decode("id") }
    }

    /// A text[] literal of `values`, quoted for PostgreSQL.
    func postgresArray(_ values: [String]) -> String {
        let quoted = values.map { value in
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "{" + quoted.joined(separator: ",") + "}"
    }
}
