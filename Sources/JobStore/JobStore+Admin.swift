import FarmModel
import Foundation
import Postgres

/// The admin views shared by the `farm` commands and the HTTP API, as typed records, so that both print the same
/// JSON; and the job and worker controls.
extension JobStore {
    /// The JSON of one `jobs` row's counts by state (its `*_count` columns), keyed as `TaskCounts` decodes it. A
    /// cancelled job's queued tasks count as cancelled: a cancel marks the job at once and rewrites its task rows
    /// after (`JobStore+Cancel.swift`), and readers see the cancel from its first moment.
    static let countsJSON = """
        json_build_object('queued', CASE WHEN state = 'cancelled' THEN 0 ELSE queued_count END, 'running', running_count,
                          'done', done_count, 'failed', failed_count,
                          'cancelled', cancelled_count + CASE WHEN state = 'cancelled' THEN queued_count ELSE 0 END)
        """

    /// Decodes a record from the JSON text that PostgreSQL built for it in `column`; JSON the record cannot read
    /// (a state this build does not know) is a `SchemaMismatch`.
    static func record<Record: Decodable>(_ type: Record.Type, _ row: Row, _ column: String = "record") throws -> Record {
        let text: String = try row.decode(column)
        do {
            return try JSONDecoder().decode(Record.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            throw SchemaMismatch(what: "\(Record.self) JSON it cannot read (\(error.summary))")
        }
    }

    /// The records that one query's single `record` column holds as a JSON array.
    func records<Record: Decodable>(_ type: Record.Type, _ sql: String, _ parameters: [PostgresBindable?] = []) throws -> [Record] {
        try Self.record([Record].self, connection.query(sql, parameters).single())
    }

    /// True when the job exists.
    public func jobExists(_ job: Int64) throws -> Bool {
        try connection.query("SELECT 1 FROM jobs WHERE id = $1", [job]).rows.count == 1
    }

    /// Every job with its counts (`farm jobs --json`, `GET /v1/jobs`), oldest first; only `owner`'s when given.
    public func jobs(owner: String? = nil) throws -> [JobRecord] {
        try jobRecords(where: "$1::text IS NULL OR owner = $1", [owner])
    }

    /// The owner of a job (empty for jobs queued straight into the database); nil when there is no such job.
    public func jobOwner(_ job: Int64) throws -> String? {
        try connection.query("SELECT owner FROM jobs WHERE id = $1", [job]).rows.first?.decode("owner")
    }

    /// The owner of the job a task belongs to; nil when there is no such task.
    public func taskOwner(_ task: Int64) throws -> String? {
        try connection.query("SELECT j.owner FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.id = $1", [task]).rows.first?.decode("owner")
    }

    /// The jobs `farm watch` follows: `job` alone when given (none if it does not exist), else every active or paused job.
    public func watchedJobs(_ job: Int64?) throws -> [JobRecord] {
        try jobRecords(where: "($1::bigint IS NULL AND state IN ('active', 'paused')) OR id = $1", [job])
    }

    private func jobRecords(where condition: String, _ parameters: [PostgresBindable?]) throws -> [JobRecord] {
        try records(
            JobRecord.self,
            """
            SELECT coalesce(json_agg(json_build_object(
                       'id', id, 'name', name, 'owner', owner, 'model', model, 'state', state, 'priority', priority, 'tasks', task_count,
                       'counts', \(Self.countsJSON), 'created', created_at::text) ORDER BY id), '[]') AS record
            FROM jobs WHERE \(condition)
            """, parameters)
    }

    /// One job's counts, or nil when there is no such job.
    public func jobCounts(_ job: Int64) throws -> TaskCounts? {
        try connection.query("SELECT \(Self.countsJSON) AS record FROM jobs WHERE id = $1", [job]).rows.first.map {
            try Self.record(TaskCounts.self, $0)
        }
    }

    /// One job's counts, rate, ETA and failures (`farm job --json`, `GET /v1/jobs/{id}`); nil if unknown. The rate is
    /// done tasks per second between the first start and the last finish of its done tasks (0 before any).
    public func jobDetail(_ job: Int64) throws -> JobDetail? {
        try connection.query(
            """
            SELECT json_build_object(
                       'id', id, 'name', name, 'owner', owner, 'state', state, 'model', model, 'counts', counts,
                       'tasks', task_count, 'tasks_per_second', rate,
                       'eta_seconds', CASE WHEN rate > 0 THEN (queued_count + running_count)::float8 / rate END,
                       'expires_after', extract(epoch FROM expires_after)::float8, 'notify', notify_url, 'pruned', pruned_at::text,
                       'failures', (SELECT coalesce(json_agg(json_build_object('reason', reason, 'tasks', n) ORDER BY n DESC), '[]')
                                    FROM (SELECT coalesce(error_message, '') AS reason, count(*) AS n FROM tasks
                                          WHERE job_id = $1 AND state = 'failed' GROUP BY error_message ORDER BY n DESC LIMIT 10) f)
                   ) AS record
            FROM (SELECT j.*, \(Self.countsJSON) AS counts,
                         CASE WHEN busy > 0 THEN done_count::float8 / busy::float8 ELSE 0 END AS rate
                  FROM jobs j, LATERAL (SELECT extract(epoch FROM max(t.finished_at) - min(t.started_at)) AS busy FROM tasks t
                                        WHERE t.job_id = j.id AND t.state = 'done') b
                  WHERE j.id = $1) d
            """, [job]
        ).rows.first.map { try Self.record(JobDetail.self, $0) }
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
        return try connection.query(
            "SELECT json_build_object('id', id, 'counts', \(Self.countsJSON), 'requeued', $2::integer) AS record FROM jobs WHERE id = $1",
            [job, requeued]
        ).rows.first.map { try Self.record(JobActionReply.self, $0) }
    }

    /// The worker registry with each worker's live columns (`farm workers --json`, `GET /v1/workers`), by name. The
    /// first running task stands for the worker's `current` task; `running` counts them all.
    public func workers() throws -> [WorkerRecord] {
        try records(
            WorkerRecord.self,
            """
            SELECT coalesce(json_agg(json_build_object(
                       'name', w.id, 'host', w.host, 'state', w.state, 'models', array_to_string(w.models, ','), 'slots', w.slots,
                       'device', w.device, 'loaded_model', w.loaded_model,
                       'seconds_since_heartbeat', round(extract(epoch FROM now() - w.last_heartbeat)::numeric, 1),
                       'failures', (SELECT coalesce(sum(f.failures), 0) FROM job_worker_failures f WHERE f.worker_id = w.id),
                       'running', (SELECT count(*) FROM tasks t WHERE t.lease_owner = w.id AND t.state = 'running'),
                       'current', CASE WHEN c.id IS NOT NULL THEN json_build_object(
                           'task', c.id, 'job', c.job_id, 'step', c.step, 'total_steps', c.total_steps,
                           'steps_per_second', c.steps_per_second) END) ORDER BY w.id), '[]') AS record
            FROM workers w
            LEFT JOIN LATERAL (SELECT t.id, t.job_id, t.step, t.total_steps, t.steps_per_second FROM tasks t
                               WHERE t.lease_owner = w.id AND t.state = 'running' ORDER BY t.id LIMIT 1) c ON true
            """)
    }

    /// The model names the farm's connected workers hold (online, draining or cordoned), sorted: what a job may name.
    public func farmModels() throws -> [String] {
        try connection.query(
            """
            SELECT DISTINCT m FROM workers, unnest(models) AS m WHERE state IN ('online', 'draining', 'cordoned') ORDER BY m
            """
        ).rows.map { try $0.decode("m", as: String.self) }
    }

    /// Every running task with its worker and step, of `job` or of all jobs, by worker then task (`farm watch`).
    public func runningTasks(job: Int64?) throws -> [TaskRecord] {
        try records(
            TaskRecord.self,
            """
            SELECT coalesce(json_agg(json_build_object(
                       'task', id, 'job', job_id, 'worker', lease_owner, 'step', step, 'total_steps', total_steps,
                       'steps_per_second', steps_per_second) ORDER BY lease_owner, id), '[]') AS record
            FROM tasks WHERE state = 'running' AND ($1::bigint IS NULL OR job_id = $1)
            """, [job])
    }

    /// A job's stored images without their bytes, in task order: index, seed and task id; with `limit`, at most that
    /// many from the `offset`-th on (a gallery's page of a 100,000-task job).
    public func imageList(job: Int64, offset: Int = 0, limit: Int? = nil) throws -> [ImageRecord] {
        try records(
            ImageRecord.self,
            """
            SELECT coalesce(json_agg(json_build_object('index', p.index, 'seed', p.seed, 'task', p.id) ORDER BY p.index), '[]')
                   AS record
            FROM (SELECT t.index, i.seed, t.id FROM images i JOIN tasks t ON t.id = i.task_id WHERE t.job_id = $1
                  ORDER BY t.index OFFSET $2 LIMIT $3) p
            """, [job, offset, limit])
    }

    /// The PNG of one task, if it has one: from the database, or from its file in the image directory.
    public func image(task: Int64) throws -> Data? {
        try connection.query("SELECT png, path FROM images WHERE task_id = $1", [task]).rows.first.map { try Self.png($0) }
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

extension WorkerStatus {
    /// A state read from the workers table; one this build does not know is a `SchemaMismatch`.
    init(databaseValue: String) throws {
        guard let state = WorkerStatus(rawValue: databaseValue) else { throw SchemaMismatch(what: "worker state \(databaseValue)") }
        self = state
    }
}

/// A value in the database that the code has no name for: the schema and the code do not match.
public struct SchemaMismatch: Error, CustomStringConvertible {
    /// What was found.
    public var what: String

    /// The one-line message.
    public var description: String { "the database holds \(what), which this build does not know: migrate, or update the farm" }
}

extension DecodingError {
    /// Where the JSON went wrong and how, in one line (`state: Cannot initialize JobState from invalid String value x`).
    var summary: String {
        let context: Context
        switch self {
        case .dataCorrupted(let found), .keyNotFound(_, let found), .typeMismatch(_, let found), .valueNotFound(_, let found):
            context = found
        @unknown default:
            return "\(self)"
        }
        let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
    }
}
