import FarmModel
import Foundation
import Postgres

/// A role an API token grants: `submit` may queue jobs and read jobs and images; `admin` may do everything.
public enum TokenRole: String, Sendable, CaseIterable {
    /// Queue jobs, read jobs and images.
    case submit
    /// Everything, including job controls and worker states.
    case admin
}

/// An API token as listed (its secret is never stored, only its SHA-256).
public struct APIToken: Sendable, Equatable {
    /// The token's row id, used to revoke it.
    public var id: Int64
    /// What it may do.
    public var role: TokenRole
    /// A label given at creation.
    public var name: String
    /// When it was made (PostgreSQL's text form).
    public var created: String
    /// When it was revoked, if it was.
    public var revoked: String?
}

extension APIToken {
    /// The token as `farm tokens list --json` and `GET /v1/tokens` show it (never the secret).
    public var summary: [String: Any] {
        ["id": id, "role": role.rawValue, "name": name, "created": created, "revoked": revoked ?? NSNull()]
    }
}

/// The admin views shared by the `farm` commands and the HTTP API, as JSON-ready objects
/// (strings, numbers, arrays, dictionaries), so both print the same JSON.
extension JobStore {
    /// Counts by state of one `jobs` row, one key per task state.
    public static func counts(_ row: Row) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for state in TaskState.allCases { counts[state.rawValue] = try row.decode("\(state.rawValue)_count") }
        return counts
    }

    /// True when the job exists.
    public func jobExists(_ job: Int64) throws -> Bool {
        try connection.query("SELECT 1 FROM jobs WHERE id = $1", [job]).rows.count == 1
    }

    /// Every job with its counts (the shape of `farm jobs --json` and `GET /v1/jobs`).
    public func jobSummaries() throws -> [[String: Any]] {
        try connection.query(
            """
            SELECT id, name, model, state, priority, task_count, queued_count, running_count, done_count, failed_count,
                   cancelled_count, created_at::text AS created FROM jobs ORDER BY id
            """
        ).rows.map { row -> [String: Any] in
            [
                "id": try row.decode("id", as: Int64.self), "name": try row.decode("name", as: String.self),
                "model": try row.decode("model", as: String.self), "state": try row.decode("state", as: String.self),
                "priority": try row.decode("priority", as: Int.self), "tasks": try row.decode("task_count", as: Int.self),
                "counts": try JobStore.counts(row), "created": try row.decode("created", as: String.self),
            ]
        }
    }

    /// One job's counts, rate, ETA and failures (the shape of `farm job --json` and `GET /v1/jobs/{id}`); nil if unknown.
    public func jobDetail(_ job: Int64) throws -> [String: Any]? {
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
        let counts = try JobStore.counts(row)
        let done = counts["done"] ?? 0
        let left = (counts["queued"] ?? 0) + (counts["running"] ?? 0)
        let busy = try row.decodeIfPresent("busy", as: Double.self) ?? 0
        let rate = busy > 0 ? Double(done) / busy : 0
        let failures = try connection.query(
            """
            SELECT error_message, count(*) AS n FROM tasks WHERE job_id = $1 AND state = 'failed'
            GROUP BY error_message ORDER BY n DESC LIMIT 10
            """, [job]
        ).rows.map { ["reason": try $0.text("error_message") ?? "", "tasks": try $0.decode("n", as: Int.self)] as [String: Any] }
        return [
            "id": job, "name": try row.decode("name", as: String.self), "state": try row.decode("state", as: String.self),
            "model": try row.decode("model", as: String.self), "counts": counts, "tasks_per_second": rate,
            "eta_seconds": rate > 0 ? Double(left) / rate : NSNull(), "failures": failures,
        ]
    }

    /// The worker registry (the shape of `farm workers --json` and `GET /v1/workers`).
    public func workerSummaries() throws -> [[String: Any]] {
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
        ).rows.map { row -> [String: Any] in
            var summary: [String: Any] = [
                "name": try row.decode("id", as: String.self), "host": try row.decode("host", as: String.self),
                "state": try row.decode("state", as: String.self), "models": try row.decode("models", as: String.self),
                "slots": try row.decode("slots", as: Int.self), "device": try row.decode("device", as: String.self),
                "loaded_model": try row.decode("loaded_model", as: String.self),
                "seconds_since_heartbeat": Double(try row.decode("silent", as: String.self)) ?? 0,
                "failures": try row.decode("failures", as: Int.self), "running": try row.decode("running", as: Int.self),
            ]
            // The first running task stands for the worker's "current task"; `running` counts them all.
            if let task = try row.decodeIfPresent("task", as: Int64.self) {
                summary["current"] = [
                    "task": task, "job": try row.decode("job", as: Int64.self),
                    "step": try row.decode("step", as: Int.self), "total_steps": try row.decode("total_steps", as: Int.self),
                    "steps_per_second": Double(try row.decodeIfPresent("speed", as: String.self) ?? "").map { $0 as Any } ?? NSNull(),
                ]
            }
            return summary
        }
    }

    /// A job's stored images without their bytes, in task order: index, seed and task id.
    public func imageList(job: Int64) throws -> [(index: Int, seed: UInt64, task: Int64)] {
        try connection.query(
            """
            SELECT t.id, t.index, i.seed::text AS seed FROM images i JOIN tasks t ON t.id = i.task_id
            WHERE t.job_id = $1 ORDER BY t.index
            """, [job]
        ).rows.map { row in
            (index: try row.decode("index"), seed: try row.decode("seed"), task: try row.decode("id"))
        }
    }

    /// The PNG of one task, if it has one.
    public func image(task: Int64) throws -> Data? {
        try connection.query("SELECT png FROM images WHERE task_id = $1", [task]).rows.first?.decode("png")
    }

    // MARK: - API tokens

    /// Makes a token for `role`: returns its id and the secret (64 hex digits), which is stored only as a SHA-256.
    public func createToken(role: TokenRole, name: String) throws -> (id: Int64, token: String) {
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = UInt8.random(in: .min ... .max, using: &generator) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        let id: Int64 = try connection.query(
            """
            INSERT INTO api_tokens (sha256, role, name) VALUES ($1, $2, $3) RETURNING id
            """, [Data(SHA256.digest(of: Data(token.utf8))), role.rawValue, name]
        ).single().decode("id")
        return (id, token)
    }

    /// The role of a token that exists and is not revoked; nil otherwise.
    public func tokenRole(_ token: String) throws -> TokenRole? {
        let rows = try connection.query(
            "SELECT role FROM api_tokens WHERE sha256 = $1 AND revoked_at IS NULL",
            [Data(SHA256.digest(of: Data(token.utf8)))]
        ).rows
        return try rows.first.flatMap { TokenRole(rawValue: try $0.decode("role", as: String.self)) }
    }

    /// Every token, without secrets, oldest first.
    public func tokens() throws -> [APIToken] {
        try connection.query(
            """
            SELECT id, role, name, created_at::text AS created, revoked_at::text AS revoked FROM api_tokens ORDER BY id
            """
        ).rows.map { row in
            APIToken(
                id: try row.decode("id"), role: TokenRole(rawValue: try row.decode("role")) ?? .submit,
                name: try row.decode("name"), created: try row.decode("created"), revoked: try row.text("revoked"))
        }
    }

    /// Revokes a token; returns false when no unrevoked token has that id.
    @discardableResult
    public func revokeToken(id: Int64) throws -> Bool {
        try connection.query("UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", [id]).affectedRows == 1
    }
}

/// A worker's CURVE public key on the coordinator's allow-list.
public struct WorkerKey: Sendable, Equatable {
    /// Z85 text, 40 characters.
    public var publicKey: String
    /// A label given when it was allowed (usually the worker host).
    public var name: String
    /// When it was allowed (PostgreSQL's text form).
    public var created: String
    /// When it was revoked, if it was.
    public var revoked: String?
}

extension JobStore {
    /// Puts a worker key on the allow-list (again, if it was revoked).
    public func allowWorkerKey(_ publicKey: String, name: String) throws {
        try connection.query(
            """
            INSERT INTO worker_keys (public_key, name) VALUES ($1, $2)
            ON CONFLICT (public_key) DO UPDATE SET name = EXCLUDED.name, revoked_at = NULL, created_at = now()
            """, [publicKey, name])
    }

    /// Takes a key off the allow-list; returns false when it was not on it.
    @discardableResult
    public func revokeWorkerKey(_ publicKey: String) throws -> Bool {
        try connection.query(
            "UPDATE worker_keys SET revoked_at = now() WHERE public_key = $1 AND revoked_at IS NULL",
            [publicKey]
        ).affectedRows == 1
    }

    /// True when `publicKey` is allowed and not revoked.
    public func isWorkerKeyAllowed(_ publicKey: String) throws -> Bool {
        try !connection.query("SELECT 1 FROM worker_keys WHERE public_key = $1 AND revoked_at IS NULL", [publicKey]).rows.isEmpty
    }

    /// Every key ever allowed, oldest first.
    public func workerKeys() throws -> [WorkerKey] {
        try connection.query(
            """
            SELECT public_key, name, created_at::text AS created, revoked_at::text AS revoked FROM worker_keys ORDER BY created_at, public_key
            """
        ).rows.map { row in
            WorkerKey(
                publicKey: try row.decode("public_key"), name: try row.decode("name"), created: try row.decode("created"),
                revoked: try row.text("revoked"))
        }
    }
}

extension JobStore {
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
        var workers = Dictionary(uniqueKeysWithValues: ["online", "draining", "cordoned", "lost", "offline"].map { ($0, 0) })
        for row in try connection.query("SELECT state, count(*)::bigint AS n FROM workers GROUP BY state").rows {
            workers[try row.decode("state")] = Int(try row.decode("n", as: Int64.self))
        }
        return (tasks, queued, workers)
    }
}
