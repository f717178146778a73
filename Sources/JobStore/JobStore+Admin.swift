import FarmModel
import Foundation
import Postgres

/// The admin views shared by the `farm` commands and the HTTP API, as typed records, so that both print the same
/// JSON; and the job and worker controls.
extension JobStore {
    /// Counts by state of one `jobs` row (its `*_count` columns).
    static func counts(_ row: Row) throws -> TaskCounts {
        var counts = TaskCounts()
        for state in TaskState.allCases { counts[state] = try row.decode("\(state.rawValue)_count") }
        return counts
    }

    /// A job state read from a row; a name the enum lacks is a database the code does not match.
    static func jobState(_ row: Row) throws -> JobState {
        let text: String = try row.decode("state")
        guard let state = JobState(rawValue: text) else { throw SchemaMismatch(what: "job state \(text)") }
        return state
    }

    /// True when the job exists.
    public func jobExists(_ job: Int64) throws -> Bool {
        try connection.query("SELECT 1 FROM jobs WHERE id = $1", [job]).rows.count == 1
    }

    /// Every job with its counts (`farm jobs --json`, `GET /v1/jobs`), oldest first.
    public func jobs() throws -> [JobRecord] {
        try jobRecords(where: "true", [])
    }

    /// The jobs `farm watch` follows: `job` alone when given (none if it does not exist), else every active or paused job.
    public func watchedJobs(_ job: Int64?) throws -> [JobRecord] {
        try jobRecords(where: "($1::bigint IS NULL AND state IN ('active', 'paused')) OR id = $1", [job])
    }

    private func jobRecords(where condition: String, _ parameters: [PostgresBindable?]) throws -> [JobRecord] {
        try connection.query(
            """
            SELECT id, name, model, state, priority, task_count, queued_count, running_count, done_count, failed_count,
                   cancelled_count, created_at::text AS created FROM jobs WHERE \(condition) ORDER BY id
            """, parameters
        ).rows.map { row in
            JobRecord(
                id: try row.decode("id"), name: try row.decode("name"), model: try row.decode("model"), state: try Self.jobState(row),
                priority: try row.decode("priority"), tasks: try row.decode("task_count"), counts: try Self.counts(row),
                created: try row.decode("created"))
        }
    }

    /// One job's counts, or nil when there is no such job.
    public func jobCounts(_ job: Int64) throws -> TaskCounts? {
        try connection.query(
            "SELECT queued_count, running_count, done_count, failed_count, cancelled_count FROM jobs WHERE id = $1", [job]
        ).rows.first.map(Self.counts)
    }

    /// One job's counts, rate, ETA and failures (`farm job --json`, `GET /v1/jobs/{id}`); nil if unknown.
    public func jobDetail(_ job: Int64) throws -> JobDetail? {
        guard
            let row = try connection.query(
                """
                SELECT j.*, extract(epoch FROM now() - j.created_at) AS age,
                       (SELECT extract(epoch FROM max(t.finished_at) - min(t.started_at)) FROM tasks t
                        WHERE t.job_id = j.id AND t.state = 'done') AS busy
                FROM jobs j WHERE j.id = $1
                """, [job]
            ).rows.first
        else { return nil }
        let counts = try Self.counts(row)
        let busy = try row.decodeIfPresent("busy", as: Double.self) ?? 0
        let rate = busy > 0 ? Double(counts.done) / busy : 0
        let failures = try connection.query(
            """
            SELECT error_message, count(*) AS n FROM tasks WHERE job_id = $1 AND state = 'failed'
            GROUP BY error_message ORDER BY n DESC LIMIT 10
            """, [job]
        ).rows.map { JobDetail.FailureGroup(reason: try $0.text("error_message") ?? "", tasks: try $0.decode("n")) }
        return JobDetail(
            id: job, name: try row.decode("name"), state: try Self.jobState(row), model: try row.decode("model"), counts: counts,
            tasksPerSecond: rate, etaSeconds: rate > 0 ? Double(counts.open) / rate : nil, failures: failures)
    }

    /// Applies a job action and returns the job's counts after it (with the requeued count for `retry`); nil when
    /// there is no such job.
    public func perform(_ action: JobAction, job: Int64) throws -> JobActionReply? {
        guard try jobExists(job) else { return nil }
        var requeued: Int?
        switch action {
        case .cancel: try cancel(job: job)
        case .pause: try pause(job: job)
        case .resume: try resume(job: job)
        case .retry: requeued = try retryFailed(job: job)
        }
        return JobActionReply(id: job, counts: try jobCounts(job) ?? TaskCounts(), requeued: requeued)
    }

    /// The worker registry with each worker's live columns (`farm workers --json`, `GET /v1/workers`), by name.
    public func workers() throws -> [WorkerRecord] {
        try connection.query(
            """
            SELECT w.id, w.host, w.state, array_to_string(w.models, ',') AS models, w.slots, w.device, w.loaded_model,
                   round(extract(epoch FROM now() - w.last_heartbeat)::numeric, 1)::text AS silent,
                   (SELECT coalesce(sum(f.failures), 0) FROM job_worker_failures f WHERE f.worker_id = w.id) AS failures,
                   (SELECT count(*) FROM tasks t WHERE t.lease_owner = w.id AND t.state = 'running') AS running,
                   c.id AS task, c.job_id AS job, c.step, c.total_steps, c.steps_per_second::text AS speed
            FROM workers w
            LEFT JOIN LATERAL (SELECT t.id, t.job_id, t.step, t.total_steps, t.steps_per_second FROM tasks t
                               WHERE t.lease_owner = w.id AND t.state = 'running' ORDER BY t.id LIMIT 1) c ON true
            ORDER BY w.id
            """
        ).rows.map { row in
            let state = try WorkerStatus(databaseValue: row.decode("state"))
            // The first running task stands for the worker's "current task"; `running` counts them all.
            let current = try row.decodeIfPresent("task", as: Int64.self).map { task in
                TaskRecord(
                    id: task, job: try row.decode("job"), step: try row.decode("step"), totalSteps: try row.decode("total_steps"),
                    stepsPerSecond: Double(try row.decodeIfPresent("speed", as: String.self) ?? ""))
            }
            return WorkerRecord(
                name: try row.decode("id"), host: try row.decode("host"), state: state, models: try row.decode("models"),
                slots: try row.decode("slots"), device: try row.decode("device"), loadedModel: try row.decode("loaded_model"),
                secondsSinceHeartbeat: Double(try row.decode("silent", as: String.self)) ?? 0, failures: try row.decode("failures"),
                running: try row.decode("running"), current: current)
        }
    }

    /// Every running task with its worker and step, of `job` or of all jobs, by worker then task (`farm watch`).
    public func runningTasks(job: Int64?) throws -> [TaskRecord] {
        try connection.query(
            """
            SELECT lease_owner, id, job_id, step, total_steps, steps_per_second::text AS speed FROM tasks
            WHERE state = 'running' AND ($1::bigint IS NULL OR job_id = $1) ORDER BY lease_owner, id
            """, [job]
        ).rows.map { row in
            TaskRecord(
                id: try row.decode("id"), job: try row.decode("job_id"), worker: try row.decode("lease_owner"), step: try row.decode("step"),
                totalSteps: try row.decode("total_steps"), stepsPerSecond: Double(try row.decodeIfPresent("speed", as: String.self) ?? ""))
        }
    }

    /// A job's stored images without their bytes, in task order: index, seed and task id.
    public func imageList(job: Int64) throws -> [ImageRecord] {
        try connection.query(
            """
            SELECT t.id, t.index, i.seed::text AS seed FROM images i JOIN tasks t ON t.id = i.task_id
            WHERE t.job_id = $1 ORDER BY t.index
            """, [job]
        ).rows.map { row in
            ImageRecord(index: try row.decode("index"), seed: try row.decode("seed"), task: try row.decode("id"))
        }
    }

    /// The PNG of one task, if it has one.
    public func image(task: Int64) throws -> Data? {
        try connection.query("SELECT png FROM images WHERE task_id = $1", [task]).rows.first?.decode("png")
    }

    /// Seconds each task of a job waited between its job's submission and its start, for the dispatch benchmark.
    public func dispatchLatencies(job: Int64) throws -> [Double] {
        try connection.query("SELECT extract(epoch FROM started_at - created_at) AS s FROM tasks WHERE job_id = $1", [job])
            .rows.map { try $0.decode("s", as: Double.self) }
    }

    /// The farm's figures for metrics: tasks by state, queued tasks by model (every model with
    /// tasks, zero included) and workers by state; every state appears, zero included.
    public func farmFigures() throws -> (tasks: [String: Int], queuedByModel: [String: Int], workers: [String: Int]) {
        var tasks = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0.rawValue, 0) })
        for row in try connection.query("SELECT state, count(*)::bigint AS n FROM tasks GROUP BY state").rows {
            tasks[try row.decode("state")] = Int(try row.decode("n", as: Int64.self))
        }
        var queued: [String: Int] = [:]
        for row in try connection.query(
            """
            SELECT model, count(*) FILTER (WHERE state = 'queued')::bigint AS n FROM tasks GROUP BY model
            """
        ).rows {
            queued[try row.decode("model")] = Int(try row.decode("n", as: Int64.self))
        }
        var workers = Dictionary(uniqueKeysWithValues: WorkerStatus.allCases.map { ($0.rawValue, 0) })
        for row in try connection.query("SELECT state, count(*)::bigint AS n FROM workers GROUP BY state").rows {
            workers[try row.decode("state")] = Int(try row.decode("n", as: Int64.self))
        }
        return (tasks, queued, workers)
    }
}

/// A value in the database that the code has no name for: the schema and the code do not match.
extension WorkerStatus {
    /// A state read from the workers table; one this build does not know is a `SchemaMismatch`.
    init(databaseValue: String) throws {
        guard let state = WorkerStatus(rawValue: databaseValue) else { throw SchemaMismatch(what: "worker state \(databaseValue)") }
        self = state
    }
}

public struct SchemaMismatch: Error, CustomStringConvertible {
    /// What was found.
    public var what: String

    /// The one-line message.
    public var description: String { "the database holds \(what), which this build does not know: migrate, or update the farm" }
}
