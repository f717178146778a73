import FarmModel
import Foundation
import Postgres

/// Owners sharing the farm: quotas, fair-share weights (the claim reads them: `claimStatement`) and priorities.
extension JobStore {
    /// Sets an owner's quotas and weight (nil quota: none); a later call replaces the whole row.
    public func setQuota(owner: String, maxQueued: Int?, maxRunning: Int?, weight: Double = 1) throws {
        let limits = Limits()
        guard owner.utf8.count <= limits.maxNameBytes else {
            throw ValidationFailure(field: "owner", message: "is \(owner.utf8.count) bytes; the limit is \(limits.maxNameBytes)")
        }
        for (field, value) in [("max_queued", maxQueued), ("max_running", maxRunning)] {
            if let value, value < 0 || value > Int(Int32.max) { throw ValidationFailure(field: field, message: "must be 0...\(Int32.max)") }
        }
        guard weight > 0 && weight <= 1_000_000 else { throw ValidationFailure(field: "weight", message: "must be above 0 and at most 1000000") }
        try connection.query(
            """
            INSERT INTO owner_quotas (owner, max_queued, max_running, weight) VALUES ($1, $2, $3, $4)
            ON CONFLICT (owner) DO UPDATE SET max_queued = $2, max_running = $3, weight = $4
            """, [owner, maxQueued, maxRunning, weight])
        // A raised running quota may free work for idle workers.
        try connection.notify(JobStore.workChannel, payload: "quota")
    }

    /// Every owner with a quota row or a job, with its quotas and what it has queued and running.
    public func quotas() throws -> [OwnerQuota] {
        try records(
            OwnerQuota.self,
            """
            SELECT coalesce(json_agg(json_build_object(
                       'owner', o.owner, 'max_queued', q.max_queued, 'max_running', q.max_running,
                       'weight', coalesce(q.weight, 1), 'queued', coalesce(u.queued, 0), 'running', coalesce(u.running, 0))
                   ORDER BY o.owner), '[]') AS record
            FROM (SELECT owner FROM owner_quotas UNION SELECT DISTINCT owner FROM jobs WHERE state IN ('active', 'paused')) o
            LEFT JOIN owner_quotas q ON q.owner = o.owner
            LEFT JOIN (SELECT owner, sum(queued_count)::integer AS queued, sum(running_count)::integer AS running
                       FROM jobs WHERE state IN ('active', 'paused') GROUP BY owner) u ON u.owner = o.owner
            """)
    }

    /// Refuses, inside a submission's transaction, a job of `count` tasks that would take `owner` past its
    /// `max_queued` quota. The quota row is locked so that two submissions cannot both pass it.
    func checkQueuedQuota(owner: String, adding count: Int, _ connection: Connection) throws {
        guard
            let row = try connection.query("SELECT max_queued FROM owner_quotas WHERE owner = $1 FOR UPDATE", [owner]).rows.first,
            let limit = try row.decodeIfPresent("max_queued", as: Int.self)
        else { return }
        let queued: Int = try connection.query(
            "SELECT coalesce(sum(queued_count), 0)::integer AS n FROM jobs WHERE owner = $1 AND state IN ('active', 'paused')", [owner]
        ).single().decode("n")
        guard queued + count <= limit else {
            throw ValidationFailure(
                field: "tasks",
                message:
                    "owner \"\(owner)\" may have \(limit) tasks queued and has \(queued); this job's \(count) would pass the quota (wait for its jobs to finish, or ask an admin: farm quotas set)"
            )
        }
    }

    /// Changes a job's priority (higher first); false when there is no such job.
    @discardableResult
    public func setPriority(job: Int64, priority: Int) throws -> Bool {
        let range = Limits().priorities
        guard range.contains(priority) else {
            throw ValidationFailure(field: "priority", message: "must be \(range.lowerBound)...\(range.upperBound), got \(priority)")
        }
        let changed = try connection.query("UPDATE jobs SET priority = $2 WHERE id = $1", [job, priority]).affectedRows == 1
        if changed { try connection.notify(JobStore.workChannel, payload: String(job)) }
        return changed
    }
}
