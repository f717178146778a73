import FarmModel
import Foundation
import Postgres

/// Retention: finished jobs lose their tasks, images (rows and files) and events, in bounded steps.
///
/// A job is prunable when it is done or cancelled with no task queued or running, and it finished longer ago than
/// the prune's `olderThan` or its own `expires_after`. Its row stays (counts, name, owner) with `pruned_at` set, and
/// one `job.pruned` event says what went. Events are append-only and tasks are not deleted one by one; both rules
/// yield only inside these transactions, which set `farm.retention` (Migrations/0012_retention.sql).
extension JobStore {
    /// Tasks (with their images) and events one step removes: each step is one short transaction.
    public static let pruneBatch = 2_000

    /// Prunes every prunable job: those finished more than `olderThan` seconds ago, and those past their
    /// `expires_after` (nil `olderThan`: only those). With `vacuum`, VACUUMs the tables after, so that PostgreSQL can
    /// reuse (and, at their ends, hand back) the space, and reports their sizes before and after. `continuing` is asked
    /// before each step (a daemon stopping ends the prune between two short transactions).
    public func prune(
        olderThan: Double?, batchSize: Int = pruneBatch, vacuum: Bool = false, continuing: () -> Bool = { true }
    ) throws -> PruneReport {
        let before = vacuum ? try relationBytes() : nil
        var report = PruneReport()
        while continuing(), let step = try pruneStep(olderThan: olderThan, batchSize: batchSize) {
            report.add(step)
        }
        if vacuum {
            try connection.query("VACUUM (ANALYZE) images, tasks, events")
            report.relationBytesBefore = before
            report.relationBytesAfter = try relationBytes()
        }
        return report
    }

    /// One bounded step of a prune: up to `batchSize` tasks (with their images) of the oldest prunable job, then, when
    /// none are left, up to `batchSize` of its events, and the job is marked pruned once both are gone. Returns what it
    /// removed, or nil when no job is prunable. Image files no other image names are removed after the commit.
    public func pruneStep(olderThan: Double?, batchSize: Int = pruneBatch) throws -> PruneReport? {
        let batch = max(1, batchSize)
        let outcome: (report: PruneReport, paths: [String])? = try connection.transaction { connection in
            try connection.query("SET LOCAL farm.retention = 'on'")
            // SKIP LOCKED: two coordinators pruning at once take different jobs; a job being retried is left alone.
            guard
                let job: Int64 = try connection.query(
                    """
                    SELECT id FROM jobs
                    WHERE state IN ('done', 'cancelled') AND pruned_at IS NULL AND finished_at IS NOT NULL
                      AND queued_count = 0 AND running_count = 0
                      AND (finished_at < now() - make_interval(secs => $1::float8)
                           OR finished_at + expires_after < now())
                    ORDER BY finished_at LIMIT 1 FOR UPDATE SKIP LOCKED
                    """, [olderThan]
                ).rows.first?.decode("id")
            else { return nil }
            var report = PruneReport()
            let doomed = "SELECT id FROM tasks WHERE job_id = $1 ORDER BY id LIMIT $2"
            let images = try connection.query(
                """
                WITH gone AS (DELETE FROM images WHERE task_id IN (\(doomed))
                              RETURNING coalesce(octet_length(png), 0) AS db, path)
                SELECT count(*)::bigint AS n, coalesce(sum(db), 0)::bigint AS db,
                       coalesce(string_agg(DISTINCT path, E'\\n'), '') AS paths FROM gone
                """, [job, batch]
            ).single()
            report.images = Int(try images.decode("n", as: Int64.self))
            report.imageBytes = try images.decode("db")
            let paths = try images.decode("paths", as: String.self).split(separator: "\n").map(String.init)
            let tasks = try connection.query(
                """
                WITH gone AS (DELETE FROM tasks t WHERE id IN (\(doomed)) RETURNING pg_column_size(t.*) AS b)
                SELECT count(*)::bigint AS n, coalesce(sum(b), 0)::bigint AS b FROM gone
                """, [job, batch]
            ).single()
            report.tasks = Int(try tasks.decode("n", as: Int64.self))
            report.rowBytes = try tasks.decode("b")
            guard report.tasks < batch else { return (report, paths) }
            let events = try connection.query(
                """
                WITH gone AS (DELETE FROM events e WHERE id IN (SELECT id FROM events WHERE job_id = $1 ORDER BY id LIMIT $2)
                              RETURNING pg_column_size(e.*) AS b)
                SELECT count(*)::bigint AS n, coalesce(sum(b), 0)::bigint AS b FROM gone
                """, [job, batch]
            ).single()
            report.events = Int(try events.decode("n", as: Int64.self))
            report.rowBytes += try events.decode("b")
            guard report.events < batch else { return (report, paths) }
            try connection.query("UPDATE jobs SET pruned_at = now() WHERE id = $1", [job])
            try connection.query(
                "DELETE FROM notifications WHERE job_id = $1 AND (delivered_at IS NOT NULL OR given_up_at IS NOT NULL)", [job])
            try connection.query("INSERT INTO events (kind, job_id) VALUES ('job.pruned', $1)", [job])
            report.jobs = 1
            return (report, paths)
        }
        guard var (report, paths) = outcome else { return nil }
        // Content-addressed: another image (the same PNG) may still name the file, or a result being stored may be
        // about to. Each file's lock, exclusive here and shared in `complete`, orders the two: a result stored first
        // is seen here and keeps its file; one stored after writes the file again.
        for path in paths {
            let hash = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            try connection.transaction { connection in
                try connection.query("SELECT pg_advisory_xact_lock($1, $2)", [Self.imageFileLockClass, Self.imageFileLock(hash)])
                guard try connection.query("SELECT 1 FROM images WHERE path = $1 LIMIT 1", [path]).rows.isEmpty else { return }
                let bytes = ImageDirectory.remove(path: path)
                report.fileBytes += bytes
                if bytes > 0 { report.files += 1 }
            }
        }
        return report
    }

    /// The first key of the image files' advisory locks ("FILE"), so that they share no key with other locks.
    static let imageFileLockClass: Int32 = 0x4649_4C45

    /// The second key of an image file's advisory lock: the first 32 bits of its SHA-256 (hex). Two files that share
    /// them only wait for each other.
    static func imageFileLock(_ hash: String) -> Int32 {
        Int32(bitPattern: UInt32(hash.prefix(8), radix: 16) ?? 0)
    }

    /// Bytes the images, tasks and events tables take on disk, with their TOAST tables and indexes.
    public func relationBytes() throws -> Int64 {
        try connection.query(
            """
            SELECT (pg_total_relation_size('images') + pg_total_relation_size('tasks') + pg_total_relation_size('events'))::bigint AS b
            """
        ).single().decode("b")
    }
}
