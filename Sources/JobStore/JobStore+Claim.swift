import FarmModel
import Foundation

/// Claiming work: the one statement that leases queued tasks to a worker, and its plan.
extension JobStore {
    /// Leases up to `limit` queued tasks that `workerID` can run, one statement: a
    /// materialized CTE with FOR UPDATE SKIP LOCKED, by job priority then age (active jobs first, then
    /// each job's queued tasks in order through the queue index, or through the (job, model, index) index
    /// when the worker's models are rare in the job, so a claim neither sorts the queue nor filters a job
    /// whose models the worker lacks: PostgreSQL plans each claim with its models' values), skipping
    /// paused or cancelled jobs, tasks still backing off, models (and refiners, VAEs and LoRAs) the worker lacks, sizes
    /// above its limit and jobs that blocklisted it. The attempt number is the fencing token.
    /// Among jobs of equal priority, those of `preferredModel` (the worker's loaded model) come
    /// first, so a worker does not reload a model another job of the same priority would need.
    public func claim(
        workerID: String, capabilities: WorkerCapabilities, limit: Int,
        leaseSeconds: Double, preferredModel: String? = nil
    ) throws -> [WireMessage.Assignment] {
        try claimWithWaits(
            workerID: workerID, capabilities: capabilities, limit: limit,
            leaseSeconds: leaseSeconds, preferredModel: preferredModel
        ).map(\.assignment)
    }

    /// The claim's one statement ($1 worker, $2 limit, $3 lease seconds, $4 models, $5 largest pixel count,
    /// $6 preferred model, $7 VAEs or NULL for a worker that takes no task naming a refiner or a VAE, $8 LoRAs or NULL
    /// for a worker without a LoRA folder: a task goes only where every LoRA it names, in `loras` or in its prompt's
    /// `<lora:NAME:…>` tags, is; $9 the worker's tags, which must hold every tag a task's `require` names; $10 the stored
    /// models its cache holds, preferred after its loaded model: an ordering, never a filter), public so
    /// that tests and operators can EXPLAIN it against a real queue. Tasks without a size count 0 pixels.
    /// The add-on checks sit behind `NOT (parameters ?| …)` and `NOT LIKE '%<%'` because PostgreSQL has no
    /// statistics for these expressions: written as `IS NULL` tests, each counted as passing 0.5 % of the rows,
    /// and with four of them a million-task queue was estimated at one matching row and claimed through a
    /// sequential scan and sort (1.1 s a claim) instead of the queue index in order (0.3 ms).
    ///
    /// Owners share the workers (fair queuing): each candidate task is ranked within its owner's (by priority, the
    /// preferred model, age), and at equal priority the tasks go in the order of (the owner's running tasks + that
    /// rank) / the owner's weight, so that an owner with fewer running tasks for its weight is served first and
    /// one owner's huge job does not starve another's small one. An owner's `max_running` quota caps running + rank.
    public static let claimStatement = """
        WITH usage AS MATERIALIZED (
            SELECT owner, sum(running_count)::integer AS running FROM jobs WHERE state = 'active' GROUP BY owner
        ), candidates AS MATERIALIZED (
            SELECT t.id, t.index, j.id AS job_id, j.priority, j.created_at,
                   CASE WHEN j.model = $6 THEN 2 WHEN j.model = ANY($10::text[]) THEN 1 ELSE 0 END AS preferred,
                   coalesce(u.running, 0) AS running, q.max_running, coalesce(q.weight, 1) AS weight,
                   row_number() OVER (PARTITION BY j.owner
                                      ORDER BY j.priority DESC,
                                               CASE WHEN j.model = $6 THEN 2 WHEN j.model = ANY($10::text[]) THEN 1 ELSE 0 END DESC, j.created_at, j.id, t.index) AS rank
            FROM jobs j
            LEFT JOIN usage u ON u.owner = j.owner
            LEFT JOIN owner_quotas q ON q.owner = j.owner
            CROSS JOIN LATERAL (
                SELECT t.id, t.index FROM tasks t
                WHERE t.job_id = j.id AND t.state = 'queued' AND t.model = ANY($4::text[]) AND t.not_before <= now()
                  AND t.pixels <= $5
                  AND (NOT (t.parameters ?| ARRAY['refiner', 'vae', 'loras', 'require'])
                       OR ((t.parameters->>'refiner' IS NULL
                            OR ($7::text[] IS NOT NULL AND t.parameters->>'refiner' = ANY($4::text[])))
                           AND (t.parameters->>'vae' IS NULL OR t.parameters->>'vae' = ANY($7::text[]))
                           AND (t.parameters->'loras' IS NULL
                                OR ($8::text[] IS NOT NULL
                                    AND ARRAY(SELECT l->>'name' FROM jsonb_array_elements(t.parameters->'loras') l)
                                        <@ $8::text[]))
                           AND (t.parameters->'require' IS NULL
                                OR ARRAY(SELECT jsonb_array_elements_text(t.parameters->'require')) <@ $9::text[])))
                  AND (t.parameters->>'prompt' NOT LIKE '%<%'
                       OR ARRAY(SELECT m[1] FROM regexp_matches(t.parameters->>'prompt', '\(TaskParameters.loraTagPattern)', 'gi') m)
                          <@ coalesce($8::text[], '{}'::text[]))
                ORDER BY t.index
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            ) t
            WHERE j.state = 'active' AND j.queued_count > 0
              AND (q.max_running IS NULL OR coalesce(u.running, 0) < q.max_running)
              AND NOT EXISTS (SELECT 1 FROM job_worker_failures f
                              WHERE f.job_id = j.id AND f.worker_id = $1 AND f.blocked)
        ), next AS (
            SELECT id FROM candidates
            WHERE max_running IS NULL OR running + rank <= max_running
            ORDER BY priority DESC, (running + rank) / weight, preferred DESC, created_at, job_id, index
            LIMIT $2
        )
        UPDATE tasks SET state = 'running', attempt = attempt + 1, lease_owner = $1,
            lease_expires = now() + make_interval(secs => $3), started_at = now(), step = 0
        FROM next WHERE tasks.id = next.id
        RETURNING tasks.id, tasks.job_id, tasks.attempt, tasks.parameters::text AS parameters,
            extract(epoch FROM now() - tasks.queued_at)::float8 AS waited
        """

    /// The claim's $4, $7, $8 and $10 for `capabilities`: the models, VAEs and LoRAs it may be given (with the stored
    /// ones' names for a worker that fetches them: only the values change, so the plan stays on the indexes) and,
    /// preferred after its loaded model, the stored models its cache holds, so that a worker claims what it holds
    /// before what it would download.
    func claimLists(_ capabilities: WorkerCapabilities) throws -> (models: [String], vaes: [String]?, loras: [String]?, held: [String]) {
        guard capabilities.fetchesModels || !capabilities.modelHashes.isEmpty else {
            return (capabilities.models, capabilities.vaes, capabilities.loras, [])
        }
        let stored = try storedModels()
        let held = Set(capabilities.modelHashes)
        let heldNames = stored.filter { held.contains($0.value.sha256) }.map(\.key)
        let fetchable = capabilities.fetchesModels ? Array(stored.keys) : heldNames
        func names(_ kind: String) -> [String] { fetchable.filter { stored[$0]?.kind == kind } }
        // A worker whose renderer takes no VAE (nil) stays without: a stored VAE does not make it able to.
        let vaes = capabilities.vaes.map { Array(Set($0 + names("vae"))).sorted() }
        let loras = names("lora").isEmpty ? capabilities.loras : Array(Set((capabilities.loras ?? []) + names("lora"))).sorted()
        return (Array(Set(capabilities.models + fetchable)).sorted(), vaes, loras, heldNames.sorted())
    }

    /// The plan PostgreSQL would use for this claim (EXPLAIN; nothing is leased), for tests and operators.
    public func claimPlan(workerID: String, capabilities: WorkerCapabilities, limit: Int, preferredModel: String? = nil) throws -> String {
        let lists = try claimLists(capabilities)
        return try connection.query(
            "EXPLAIN " + JobStore.claimStatement,
            [
                workerID, limit, 60.0, postgresArray(lists.models),
                capabilities.maxPixels, preferredModel ?? "", lists.vaes.map(postgresArray),
                lists.loras.map(postgresArray), postgresArray(capabilities.tags), postgresArray(lists.held),
            ]
        )
        .rows.map { try $0.decode("QUERY PLAN", as: String.self) }.joined(separator: "\n")
    }

    /// Like `claim`, but also returns the seconds each task waited since it last became dispatchable.
    public func claimWithWaits(
        workerID: String, capabilities: WorkerCapabilities, limit: Int,
        leaseSeconds: Double, preferredModel: String? = nil
    ) throws -> [(assignment: WireMessage.Assignment, waited: Double)] {
        guard limit > 0 else { return [] }
        let lists = try claimLists(capabilities)
        let result = try connection.query(
            JobStore.claimStatement,
            [
                workerID, limit, leaseSeconds, postgresArray(lists.models),
                capabilities.maxPixels, preferredModel ?? "", lists.vaes.map(postgresArray),
                lists.loras.map(postgresArray), postgresArray(capabilities.tags), postgresArray(lists.held),
            ])
        let decoder = JSONDecoder()
        return try result.rows.map { row in
            let json: String = try row.decode("parameters")
            return (
                WireMessage.Assignment(
                    taskID: try row.decode("id"), attempt: try row.decode("attempt"),
                    parameters: try decoder.decode(TaskParameters.self, from: Data(json.utf8)),
                    jobID: try row.decode("job_id")),
                max(0, try row.decode("waited", as: Double.self))
            )
        }
    }
}
