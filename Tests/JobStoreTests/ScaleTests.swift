import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

/// Runs `body` on its own thread; `wait` returns when it is done and rethrows its error.
final class Background: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var error: Error?

    init(_ body: @escaping () throws -> Void) {
        Thread.detachNewThread { [self] in
            do { try body() } catch { self.error = error }
            done.signal()
        }
    }

    func wait() throws {
        done.wait()
        if let error { throw error }
    }
}

/// The queue at the size a real farm reaches: millions of task rows, a million-task job. These run on
/// their own after the rest of the suite (Deploy/test.sh), so that their timings are the machine's.
@Suite(.serialized) struct JobStoreScale {
    /// History as a farm accumulates it: `jobs` finished jobs of `tasksPerJob` tasks each, with some
    /// workers' failure records; one INSERT each.
    static func history(_ store: JobStore, jobs: Int, tasksPerJob: Int) throws {
        try store.testConnection.query(
            "INSERT INTO jobs (name, model, state) SELECT 'old', 'm', 'done' FROM generate_series(1, $1::integer)",
            [jobs])
        try store.testConnection.query(
            """
            INSERT INTO tasks (job_id, index, parameters, state, finished_at)
            SELECT j.id, g, jsonb_build_object('prompt', 'p' || g, 'model', 'm', 'width', 64, 'height', 64, 'steps', 2, 'seed', g),
                   'done', now()
            FROM jobs j CROSS JOIN generate_series(0, $1::integer - 1) g WHERE j.name = 'old'
            """, [tasksPerJob])
        try store.testConnection.query(
            """
            INSERT INTO job_worker_failures (job_id, worker_id, failures, blocked)
            SELECT id, 'w' || (id % 50), 1, false FROM jobs WHERE name = 'old'
            """)
    }

    @Test func claimsUseIndexesOnlyWithMillionsOfTaskRows() throws {
        let store = try migratedStore()
        // History: two million finished tasks in 2,000 jobs; the queue: one job of a million, made through
        // the real submit path.
        try Self.history(store, jobs: 2_000, tasksPerJob: 1_000)
        let active = try store.enqueue(
            name: "big", model: "m",
            tasks: (0..<1_000_000).map {
                TaskParameters(prompt: "a fox \($0)", model: "m", width: 64, height: 64, steps: 2, seed: UInt64($0))
            })
        try store.testConnection.query("ANALYZE")
        for (name, models) in [
            ("no matching model", ["demo"]), ("an unknown model", ["x"]), ("the job's model", ["m"]),
            ("several models", ["demo", "m", "x"]),
        ] {
            let plan = try store.claimPlan(workerID: "w", capabilities: WorkerCapabilities(models: models), limit: 4)
            // Only owner_quotas may be read whole: one row per owner with a quota, however long the farm runs.
            let scanned = plan.split(separator: "\n").compactMap { line -> String? in
                guard let range = line.range(of: "Seq Scan on ") else { return nil }
                return line[range.upperBound...].split(separator: " ").first.map(String.init)
            }
            #expect(scanned.allSatisfy { $0 == "owner_quotas" }, "claim for a worker with \(name) scans a table:\n\(plan)")
            // Models the job lacks are looked up in the (job, model) index; the job's own walk one of its indexes in
            // order (the queue index or the (job, index) key: which one is the planner's choice, both stop early).
            let indexes =
                models.contains("m")
                ? ["Index Scan using tasks_queued on tasks", "Index Scan using tasks_job_id_index_key on tasks"]
                : ["Index Scan using tasks_queued_model on tasks"]
            #expect(indexes.contains { plan.contains($0) }, "claim for a worker with \(name) uses none of \(indexes):\n\(plan)")
        }
        // And it costs little either way (the plan above is what makes it so; the times are for the log).
        for models in [["demo"], ["m"]] {
            let started = Date()
            let claimed = try store.claim(
                workerID: "w-\(models[0])", capabilities: WorkerCapabilities(models: models), limit: 4,
                leaseSeconds: 30)
            let seconds = Date().timeIntervalSince(started)
            #expect(claimed.count == (models == ["m"] ? 4 : 0))
            #expect(claimed.allSatisfy { $0.jobID == active })
            print("claim for \(models) with 3M task rows: \(String(format: "%.1f", seconds * 1000)) ms")
        }
        // A worker that fetches store models lacks `m` but may take it once `m` is stored; it holds it, so it is preferred.
        let hash = String(repeating: "c", count: 64)
        try store.addModel(name: "m", kind: "checkpoint", sha256: hash, size: 1)
        var fetcher = WorkerCapabilities(models: ["demo"])
        (fetcher.fetchesModels, fetcher.modelHashes) = (true, [hash])
        let plan = try store.claimPlan(workerID: "fetcher", capabilities: fetcher, limit: 4)
        #expect(!plan.contains("Seq Scan on tasks") && !plan.contains("Seq Scan on jobs"), "a fetching worker's claim scans a table:\n\(plan)")
        let started = Date()
        let claimed = try store.claim(workerID: "fetcher", capabilities: fetcher, limit: 4, leaseSeconds: 30)
        #expect(claimed.count == 4 && claimed.allSatisfy { $0.jobID == active })
        print("claim for a worker fetching store models with 3M task rows: \(String(format: "%.1f", Date().timeIntervalSince(started) * 1000)) ms")
    }

    @Test func cancellingAMillionTasksTakesSecondsAndBlocksNoResult() throws {
        // A server of its own: the shared one may still be vacuuming the other scale test's three million rows,
        // which on two cores would be timed with the cancel.
        let server = try TemporaryPostgres()
        defer { server.stop() }
        let conninfo = try server.createDatabase()
        let store = JobStore(connection: try Connection(conninfo))
        try Migrator(folder: migrationsFolder).apply(to: store.testConnection)
        let big = try store.enqueue(
            name: "big", model: "m",
            tasks: (0..<1_000_000).map {
                TaskParameters(prompt: "a fox \($0)", model: "m", width: 64, height: 64, steps: 2, seed: UInt64($0))
            })
        // Another job's task is running: its result must be stored while the cancel runs.
        let other = try store.enqueue(name: "other", model: "o", tasks: tasks(2, model: "o"))
        let running = try store.claim(workerID: "w", capabilities: WorkerCapabilities(models: ["o"]), limit: 2, leaseSeconds: 60)
        #expect(running.count == 2 && running.allSatisfy { $0.jobID == other })
        let second = JobStore(connection: try Connection(conninfo))
        let started = Date()
        let cancelled = Background { try store.cancel(job: big) }
        // Seen from another connection, the cancel takes effect at its first commit: every task counts as
        // cancelled and nothing claims them, while the task rows are still being rewritten.
        var seenAfter: Double?
        while seenAfter == nil, Date().timeIntervalSince(started) < 30 {
            if try second.progress(job: big).counts == [.cancelled: 1_000_000] {
                seenAfter = Date().timeIntervalSince(started)
            } else {
                Thread.sleep(forTimeInterval: 0.005)
            }
        }
        #expect(try second.claim(workerID: "v", capabilities: WorkerCapabilities(models: ["m"]), limit: 4, leaseSeconds: 30).isEmpty)
        var resultSeconds: [Double] = []
        for assignment in running {
            let before = Date()
            let outcome = try second.complete(
                .init(
                    taskID: assignment.taskID, attempt: assignment.attempt, width: 64, height: 64,
                    seed: 0), png: Data([1, 2, 3]), workerID: "w")
            resultSeconds.append(Date().timeIntervalSince(before))
            #expect(outcome == .stored)
        }
        let rowsStillQueued: Int = try second.testConnection.query(
            "SELECT count(*)::integer AS n FROM tasks WHERE job_id = $1 AND state = 'queued'", [big]
        ).single().decode("n")
        try cancelled.wait()
        let seconds = Date().timeIntervalSince(started)
        print(
            "cancel of 1,000,000 queued tasks: seen after \(seenAfter.map { String(format: "%.3f s", $0) } ?? "never"), "
                + "rows rewritten after \(String(format: "%.2f", seconds)) s (\(rowsStillQueued) still queued when the results came); "
                + "results meanwhile: \(resultSeconds.map { String(format: "%.3f s", $0) })"
        )
        #expect(seenAfter.map { $0 < 1 } == true, "the cancel was seen after \(seenAfter ?? .infinity) s")
        // The rewrite is linear (about 9 µs a row on one core, two cores here); a quadratic one took minutes for 80k.
        #expect(seconds < 60, "rewriting a million cancelled tasks took \(seconds) s")
        #expect(rowsStillQueued > 0, "the results came after the rewrite, so they were not timed during it")
        #expect(resultSeconds.allSatisfy { $0 < 1 }, "results waited \(resultSeconds) s behind the cancel")
        #expect(try store.progress(job: big).counts == [.cancelled: 1_000_000])
        #expect(try store.testConnection.query("SELECT 1 FROM tasks WHERE job_id = $1 AND state = 'queued' LIMIT 1", [big]).rows.isEmpty)
        try expectCountsConsistent(store)
    }
}
