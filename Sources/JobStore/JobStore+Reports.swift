import FarmModel
import Foundation
import Postgres

/// What workers report on the tasks they hold: progress, results and failures, accepted only from the lease
/// holder's current attempt; and leases that run out.
extension JobStore {
    /// Records progress of the current attempt and extends its lease; stale attempts are ignored.
    @discardableResult
    public func progress(_ report: WireMessage.Progress, leaseSeconds: Double) throws -> Bool {
        try connection.query(
            """
            UPDATE tasks SET step = $3, total_steps = $4, lease_expires = now() + make_interval(secs => $5),
                steps_per_second = coalesce($6, steps_per_second)
            WHERE id = $1 AND attempt = $2 AND state = 'running'
            """, [report.taskID, report.attempt, report.step, report.total, leaseSeconds, report.itemsPerSecond]
        ).affectedRows == 1
    }

    /// Records the latest progress of several tasks in one statement and extends their
    /// leases; reports of attempts that are no longer current, or from a worker that does not hold the
    /// lease, are ignored. Returns the rows updated.
    @discardableResult
    public func progress(batch entries: [(report: WireMessage.Progress, workerID: String)], leaseSeconds: Double) throws -> Int {
        guard !entries.isEmpty else { return 0 }
        let reports = entries.map(\.report)
        func array(_ values: [Int64]) -> String { "{" + values.map(String.init).joined(separator: ",") + "}" }
        return try connection.query(
            """
            UPDATE tasks t SET step = r.step, total_steps = r.total, lease_expires = now() + make_interval(secs => $5),
                steps_per_second = coalesce(r.speed, t.steps_per_second)
            FROM unnest($1::bigint[], $2::integer[], $3::integer[], $4::integer[], $6::real[], $7::text[])
                AS r(id, attempt, step, total, speed, owner)
            WHERE t.id = r.id AND t.attempt = r.attempt AND t.state = 'running' AND t.lease_owner = r.owner
            """,
            [
                array(reports.map(\.taskID)), array(reports.map { Int64($0.attempt) }),
                array(reports.map { Int64($0.step) }), array(reports.map { Int64($0.total) }), leaseSeconds,
                "{" + reports.map { $0.itemsPerSecond.map { String(format: "%.3f", $0) } ?? "NULL" }.joined(separator: ",") + "}",
                postgresArray(entries.map(\.workerID)),
            ]
        ).affectedRows
    }

    /// Stores a finished image if it belongs to the task's current attempt, leased to `workerID`, and is of the
    /// size the task asked for (when it asked for one; outpainting, hires fix and an upscaler make images of another size
    /// than the task's `width` × `height`). The caller has checked that `png` decodes to that size.
    public func complete(_ header: WireMessage.ResultHeader, png: Data, workerID: String) throws -> ReportOutcome {
        try connection.transaction { connection in
            let updated = try connection.query(
                """
                UPDATE tasks SET state = 'done', finished_at = now(), lease_owner = NULL, lease_expires = NULL,
                    step = total_steps
                WHERE id = $1 AND attempt = $2 AND state = 'running' AND lease_owner = $3
                  AND (parameters ?| array['outpaint', 'upscaler', 'hires_scale', 'hires_width', 'hires_height']
                       OR (coalesce((parameters->>'width')::integer, $4) = $4
                                                  AND coalesce((parameters->>'height')::integer, $5) = $5))
                RETURNING job_id, parameters::text AS parameters
                """, [header.taskID, header.attempt, workerID, header.width, header.height])
            guard let row = updated.rows.first else {
                guard
                    let current = try connection.query(
                        """
                        SELECT state, attempt = $2 AND lease_owner = $3 AS holder,
                            (parameters->>'width') || 'x' || (parameters->>'height') AS size
                        FROM tasks WHERE id = $1
                        """, [header.taskID, header.attempt, workerID]
                    ).rows.first
                else { return .stale }
                let state: String = try current.decode("state")
                if state == "done" { return .alreadyDone }
                if state == "running", try current.decode("holder", as: Bool.self) {
                    let size = try current.decodeIfPresent("size", as: String.self) ?? "?"
                    return .rejected("the task asks for \(size), the result is \(header.width)x\(header.height)")
                }
                return .stale
            }
            // With an image directory the file is written (atomically) before its row, so no row names a missing file;
            // a transaction that then fails leaves a file that the same result, sent again, writes over.
            var file: (path: String, bytes: Int)?
            // One hash of the PNG serves the file's name, its lock and the row.
            let digest = SHA256.digest(of: png)
            if let imageDirectory {
                let hash = SHA256.hex(digest: digest)
                // Shared with other writers of the same file, exclusive with a prune that would remove it (`pruneStep`).
                try connection.query(
                    "SELECT pg_advisory_xact_lock_shared($1, $2)", [Self.imageFileLockClass, Self.imageFileLock(hash)])
                file = try imageDirectory.write(png, hash: hash)
            }
            try connection.query(
                """
                INSERT INTO images (task_id, attempt, png, path, bytes, width, height, seed, sha256, parameters)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
                ON CONFLICT (task_id) DO UPDATE SET attempt = EXCLUDED.attempt, png = EXCLUDED.png, path = EXCLUDED.path,
                    bytes = EXCLUDED.bytes, width = EXCLUDED.width, height = EXCLUDED.height, seed = EXCLUDED.seed,
                    sha256 = EXCLUDED.sha256, parameters = EXCLUDED.parameters
                """,
                [
                    header.taskID, header.attempt, file == nil ? png : nil, file?.path, file.map { Int64($0.bytes) },
                    header.width, header.height, header.seed, Data(digest),
                    try row.decode("parameters", as: String.self),
                ])
            // The audit trail names the worker that rendered it, as it does for failures.
            try connection.query(
                "INSERT INTO events (kind, job_id, task_id, worker_id, attempt) VALUES ('task.done', $1, $2, $3, $4)",
                [try row.decode("job_id", as: Int64.self), header.taskID, workerID, header.attempt])
            return .stored
        }
    }

    /// Records a failed attempt of a task leased to `workerID` (reports about others' leases are stale). Input errors fail the task at once. Host errors send it
    /// back to the queue after an exponential backoff until the job's attempts are spent,
    /// and count against the worker: at `retry.blocklistAfter` failures in one job it is
    /// blocklisted for that job.
    public func fail(_ failure: WireMessage.Failure, workerID: String) throws -> ReportOutcome {
        try connection.transaction { connection in
            let result = try connection.query(
                """
                UPDATE tasks t SET
                    state = CASE WHEN $3 = 'input' OR t.attempt >= j.max_attempts THEN 'failed' ELSE 'queued' END,
                    finished_at = CASE WHEN $3 = 'input' OR t.attempt >= j.max_attempts THEN now() END,
                    not_before = now() + make_interval(secs => least($6::float8, $5::float8 * 2 ^ (t.attempt - 1))),
                    lease_owner = NULL, lease_expires = NULL, error_kind = $3, error_message = $4
                FROM jobs j
                WHERE t.id = $1 AND t.attempt = $2 AND t.state = 'running' AND t.lease_owner = $7 AND j.id = t.job_id
                RETURNING t.job_id, t.state
                """,
                [
                    failure.taskID, failure.attempt, failure.kind.rawValue, failure.message, retry.baseDelay, retry.maxDelay,
                    workerID,
                ])
            guard let row = result.rows.first else {
                let state = try connection.query("SELECT state FROM tasks WHERE id = $1", [failure.taskID]).rows.first
                return try state?.decode("state", as: String.self) == "done" ? .alreadyDone : .stale
            }
            let job: Int64 = try row.decode("job_id")
            if failure.kind == .host {
                try connection.query(
                    """
                    INSERT INTO job_worker_failures (job_id, worker_id, failures, blocked) VALUES ($1, $2, 1, 1 >= $3)
                    ON CONFLICT (job_id, worker_id) DO UPDATE SET failures = job_worker_failures.failures + 1,
                        blocked = job_worker_failures.failures + 1 >= $3
                    """, [job, workerID, retry.blocklistAfter])
            }
            try connection.query(
                """
                INSERT INTO events (kind, job_id, task_id, worker_id, attempt, detail) VALUES ($1, $2, $3, $4, $5, $6)
                """, ["task.failed.\(failure.kind.rawValue)", job, failure.taskID, workerID, failure.attempt, failure.message])
            if try row.decode("state", as: String.self) == "queued" { try connection.notify(JobStore.workChannel) }
            return .stored
        }
    }

    /// Puts tasks whose lease ran out back in the queue (or fails them when out of attempts);
    /// returns how many it touched.
    @discardableResult
    public func requeueExpired() throws -> Int {
        try requeue(where: "t.lease_expires < now()", reason: "'lease expired on ' || t.lease_owner", parameters: [])
    }

    /// Puts running tasks matching `condition` back in the queue (or fails those out of attempts), with `reason`.
    func requeue(where condition: String, reason: String, parameters: [PostgresBindable?]) throws -> Int {
        let count = try connection.query(
            """
            UPDATE tasks t SET
                state = CASE WHEN t.attempt >= j.max_attempts THEN 'failed' ELSE 'queued' END,
                finished_at = CASE WHEN t.attempt >= j.max_attempts THEN now() END,
                error_kind = 'host', error_message = \(reason),
                lease_owner = NULL, lease_expires = NULL
            FROM jobs j
            WHERE t.state = 'running' AND \(condition) AND j.id = t.job_id
            """, parameters
        ).affectedRows
        if count > 0 { try connection.notify(JobStore.workChannel) }
        return count
    }
}
