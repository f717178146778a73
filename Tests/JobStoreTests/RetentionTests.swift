import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import Testing

/// Claims and completes every queued task of `job` as worker `w`, each result `png(index)`.
func completeAll(_ store: JobStore, job: Int64, png: (Int) -> Data) throws {
    var done = 0
    while true {
        let claimed = try store.claim(workerID: "w", capabilities: anyModel, limit: 100, leaseSeconds: 60).filter { $0.jobID == job }
        if claimed.isEmpty { return }
        for assignment in claimed {
            let header = WireMessage.ResultHeader(taskID: assignment.taskID, attempt: assignment.attempt, width: 64, height: 64, seed: 0)
            #expect(try store.complete(header, png: png(done), workerID: "w") == .stored)
            done += 1
        }
    }
}

/// Bytes of `count` that do not compress (PNGs do not), different for each `seed`.
func noise(_ count: Int, seed: Int) -> Data {
    var state = UInt64(seed + 1) &* 0x9E37_79B9_7F4A_7C15
    return Data(
        (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        })
}

@Test func appendOnlyRulesYieldOnlyToRetention() throws {
    let store = try migratedStore()
    let db = store.testConnection
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(2))
    #expect(throws: PostgresError.self) { try db.query("DELETE FROM events WHERE job_id = $1", [job]) }
    #expect(throws: PostgresError.self) { try db.query("UPDATE events SET detail = 'x'") }
    #expect(throws: PostgresError.self) { try db.query("DELETE FROM tasks WHERE job_id = $1", [job]) }
    // The setting opens DELETE only: an UPDATE of the trail is refused even inside the retention path.
    #expect(throws: PostgresError.self) {
        try db.transaction { connection in
            try connection.query("SET LOCAL farm.retention = 'on'")
            try connection.query("UPDATE events SET detail = 'x'")
        }
    }
    // SET LOCAL ends with its transaction: the rules hold again after it.
    try db.transaction { try $0.query("SET LOCAL farm.retention = 'on'") }
    #expect(throws: PostgresError.self) { try db.query("DELETE FROM events WHERE job_id = $1", [job]) }
    #expect(try db.query("SELECT count(*)::bigint AS n FROM tasks").single().decode("n", as: Int64.self) == 2)
}

@Test func pruneRemovesFinishedJobsInBoundedStepsAndLeavesOpenOnes() throws {
    let store = try migratedStore()
    let db = store.testConnection
    #expect(try store.registerWorker(WireMessage.Hello(workerID: "w", host: "h", models: ["m"], slots: 1)) == .online)
    let finished = try store.enqueue(name: "finished", model: "m", tasks: tasks(5))
    try completeAll(store, job: finished, png: { noise(3000, seed: $0) })
    let expiring = try store.enqueue(name: "expiring", model: "m", expiresAfter: 3600, tasks: tasks(1))
    try completeAll(store, job: expiring, png: { noise(100, seed: 100 + $0) })
    let cancelled = try store.enqueue(name: "cancelled", model: "m", tasks: tasks(4))
    try store.cancel(job: cancelled)
    // Last, so that no claim above takes its tasks: one done, one running, one queued.
    let open = try store.enqueue(name: "open", model: "m", tasks: tasks(3))
    let claimed = try store.claim(workerID: "w", capabilities: anyModel, limit: 2, leaseSeconds: 60)
    #expect(
        try store.complete(.init(taskID: claimed[0].taskID, attempt: 1, width: 64, height: 64, seed: 0), png: Data([1]), workerID: "w") == .stored)
    try db.query("UPDATE jobs SET finished_at = now() - interval '3 days' WHERE id = $1", [finished])
    try db.query("UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = $1", [cancelled])
    try db.query("UPDATE jobs SET finished_at = now() - interval '2 hours' WHERE id = $1", [expiring])

    // Only `expiring` is past its own expires_after, and nothing else is older than 30 days.
    let expired = try store.prune(olderThan: nil)
    #expect(expired.jobs == 1 && expired.images == 1 && expired.tasks == 1 && expired.imageBytes == 100)
    #expect(try store.prune(olderThan: 30 * 86_400).jobs == 0)
    // Bounded steps: two tasks a step, the job marked pruned only when its tasks and events are gone.
    let first = try #require(try store.pruneStep(olderThan: 86_400, batchSize: 2))
    #expect(first.tasks == 2 && first.images == 2 && first.jobs == 0 && first.imageBytes == 6000)
    var rest = PruneReport()
    while let step = try store.pruneStep(olderThan: 86_400, batchSize: 2) { rest.add(step) }
    #expect(rest.jobs == 2 && rest.tasks == 3 + 4 && rest.images == 3 && rest.imageBytes == 9000 && rest.events > 0)
    let left = try db.query(
        "SELECT (SELECT count(*) FROM tasks WHERE job_id <> $1)::bigint AS t, (SELECT count(*) FROM events WHERE job_id <> $1 AND kind <> 'job.pruned')::bigint AS e",
        [open]
    ).single()
    #expect(try left.decode("t", as: Int64.self) == 0 && left.decode("e", as: Int64.self) == 0)
    // The open job is untouched; pruned jobs keep their rows and counts.
    #expect(try store.progress(job: open).counts == [.queued: 1, .running: 1, .done: 1])
    #expect(try store.images(job: open).count == 1)
    let pruned = try db.query("SELECT count(*)::bigint AS n FROM jobs WHERE pruned_at IS NOT NULL").single().decode("n", as: Int64.self)
    #expect(try pruned == 3 && store.jobCounts(finished)?.done == 5)
    #expect(try store.prune(olderThan: 1).jobs == 0, "a pruned job is pruned once")
}

@Test func imagesInADirectoryAreContentAddressedAndRemovedWithTheirLastImage() throws {
    let store = try migratedStore()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("images-\(UUID().uuidString.prefix(8))")
    defer { try? FileManager.default.removeItem(at: folder) }
    store.imageDirectory = try ImageDirectory(path: folder.path)
    #expect(try store.registerWorker(WireMessage.Hello(workerID: "w", host: "h", models: ["m"], slots: 1)) == .online)
    let same = noise(5000, seed: 7)
    let first = try store.enqueue(name: "a", model: "m", tasks: tasks(2))
    try completeAll(store, job: first, png: { $0 == 0 ? same : noise(4000, seed: 8) })
    let second = try store.enqueue(name: "b", model: "m", tasks: tasks(1))
    try completeAll(store, job: second, png: { _ in same })
    let rows = try store.testConnection.query("SELECT png IS NULL AS inline_gone, path, bytes FROM images ORDER BY task_id").rows
    #expect(try rows.allSatisfy { try $0.decode("inline_gone", as: Bool.self) })
    let path: String = try rows[0].decode("path")
    #expect(path == folder.appendingPathComponent(String(SHA256.hex(of: same).prefix(2))).appendingPathComponent(SHA256.hex(of: same) + ".png").path)
    #expect(try rows[2].decode("path", as: String.self) == path, "the same PNG is one file")
    #expect(
        try store.images(job: first).map(\.png) == [same, noise(4000, seed: 8)] && store.image(task: store.images(job: second)[0].taskID) == same)
    // No temporary files are left beside the images.
    let names = try FileManager.default.subpathsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".png") || $0.contains(".tmp") }
    #expect(names.count == 2 && !names.contains { $0.contains(".tmp") })

    try store.testConnection.query("UPDATE jobs SET finished_at = now() - interval '1 hour' WHERE id = $1", [first])
    let report = try store.prune(olderThan: 60)
    #expect(report.images == 2 && report.imageBytes == 0 && report.files == 1 && report.fileBytes == 4000)
    #expect(FileManager.default.fileExists(atPath: path), "job b's image still names the shared file")
    try store.testConnection.query("UPDATE jobs SET finished_at = now() - interval '1 hour' WHERE id = $1", [second])
    #expect(try store.prune(olderThan: 60).fileBytes == 5000 && !FileManager.default.fileExists(atPath: path))
}

@Test func aJobEndQueuesOneNotificationThatSendersClaimOnce() throws {
    let store = try migratedStore()
    let db = store.testConnection
    #expect(try store.registerWorker(WireMessage.Hello(workerID: "w", host: "h", models: ["m"], slots: 1)) == .online)
    #expect(throws: ValidationFailure.self) { try store.enqueue(name: "bad", model: "m", notify: "ftp://x", tasks: tasks(1)) }
    let done = try store.enqueue(name: "done", model: "m", notify: "http://127.0.0.1:1/hook", tasks: tasks(2))
    let cancelled = try store.enqueue(name: "cancelled", model: "m", notify: "http://127.0.0.1:1/hook", tasks: tasks(3))
    _ = try store.enqueue(name: "silent", model: "m", tasks: tasks(1))
    try store.cancel(job: cancelled)
    try completeAll(store, job: done, png: { _ in Data([1]) })
    try store.cancel(job: cancelled)
    #expect(try db.query("SELECT count(*)::bigint AS n FROM notifications").single().decode("n", as: Int64.self) == 2)

    let other = JobStore(connection: try Connection(db.conninfo))
    let claimed = try store.claimNotifications(limit: 10, leaseSeconds: 60, giveUpSeconds: 86_400)
    #expect(try claimed.count == 2 && other.claimNotifications(limit: 10, leaseSeconds: 60, giveUpSeconds: 86_400).isEmpty)
    let bodies = try claimed.map { try JSONDecoder().decode(JobNotification.self, from: $0.payload) }
    let byJob = Dictionary(uniqueKeysWithValues: bodies.map { ($0.job, $0) })
    #expect(byJob[done]?.state == "done" && byJob[done]?.counts.done == 2 && byJob[done]?.tasks == 2)
    #expect(byJob[cancelled]?.state == "cancelled" && byJob[cancelled]?.counts.cancelled == 3)
    // A failed attempt is due again after its delay; a delivered one never again.
    let first = try #require(claimed.first { $0.job == done })
    try store.notificationFailed(first.id, error: "HTTP 500", retryAfter: 0)
    try store.notificationDelivered(try #require(claimed.first { $0.job == cancelled }).id)
    let again = try other.claimNotifications(limit: 10, leaseSeconds: 60, giveUpSeconds: 86_400)
    #expect(again.map(\.id) == [first.id] && again[0].attempts == 2)
    #expect(try store.notificationDelivered(first.id) && !store.notificationDelivered(first.id))
    #expect(try store.secondsToNextNotification() == nil)
}

@Test func aPruneKeepsTheFileOfAResultBeingStoredMeanwhile() throws {
    let store = try migratedStore()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("images-\(UUID().uuidString.prefix(8))")
    defer { try? FileManager.default.removeItem(at: folder) }
    store.imageDirectory = try ImageDirectory(path: folder.path)
    #expect(try store.registerWorker(WireMessage.Hello(workerID: "w", host: "h", models: ["m"], slots: 1)) == .online)
    let png = noise(2000, seed: 3)
    let old = try store.enqueue(name: "old", model: "m", tasks: tasks(1))
    try completeAll(store, job: old, png: { _ in png })
    try store.testConnection.query("UPDATE jobs SET finished_at = now() - interval '1 hour' WHERE id = $1", [old])
    let path = try store.testConnection.query("SELECT path FROM images").single().decode("path", as: String.self)
    let running = try store.enqueue(name: "running", model: "m", tasks: tasks(1))
    let task = try #require(try store.claim(workerID: "w", capabilities: anyModel, limit: 1, leaseSeconds: 60).first)
    #expect(task.jobID == running)

    // Another coordinator is storing the same PNG for the running job: it holds the file's lock as `complete` does.
    let writer = try Connection(store.testConnection.conninfo)
    try writer.query("BEGIN")
    let key = Int32(bitPattern: UInt32(SHA256.hex(of: png).prefix(8), radix: 16)!)
    try writer.query("SELECT pg_advisory_xact_lock_shared($1, $2)", [Int32(0x4649_4C45), key])
    let pruner = JobStore(connection: try Connection(store.testConnection.conninfo))
    final class Outcome: @unchecked Sendable {
        var report: PruneReport?
        var error: Error?
    }
    let outcome = Outcome()
    let finished = DispatchSemaphore(value: 0)
    Thread {
        do { outcome.report = try pruner.prune(olderThan: 60) } catch { outcome.error = error }
        finished.signal()
    }.start()
    #expect(finished.wait(timeout: .now() + 1) == .timedOut, "the prune waits for the file's lock")
    try writer.query(
        "INSERT INTO images (task_id, attempt, path, bytes, width, height, seed, sha256) VALUES ($1, 1, $2, 2000, 64, 64, 0, $3)",
        [task.taskID, path, Data(SHA256.digest(of: png))])
    try writer.query("COMMIT")
    #expect(finished.wait(timeout: .now() + 30) == .success)
    #expect(outcome.error == nil && outcome.report?.images == 1 && outcome.report?.files == 0)
    #expect(FileManager.default.fileExists(atPath: path), "the running job's new image still names the file")
}
