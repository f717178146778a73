import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

/// The repository's Migrations folder, found from this file's path.
let migrationsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Migrations")

func migratedStore() throws -> JobStore {
    let connection = try Connection(try TemporaryPostgres.shared.createDatabase())
    try Migrator(folder: migrationsFolder).apply(to: connection)
    let store = JobStore(connection: connection)
    store.retry.baseDelay = 0
    return store
}

let anyModel = WorkerCapabilities(models: ["m"])

func tasks(_ count: Int, model: String = "m", width: Int = 64, height: Int = 64) -> [TaskParameters] {
    (0..<count).map { TaskParameters(prompt: "p\($0)", model: model, width: width, height: height, steps: 2, seed: UInt64($0)) }
}

/// Every job's stored counts equal the sum of its tasks' states.
func expectCountsConsistent(_ store: JobStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let wrong = try store.testConnection.query(
        """
        SELECT j.id FROM jobs j WHERE
            j.queued_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued') OR
            j.running_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'running') OR
            j.done_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'done') OR
            j.failed_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'failed') OR
            j.cancelled_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'cancelled') OR
            j.task_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id)
        """
    ).rows
    #expect(wrong.isEmpty, "jobs whose counts disagree with their tasks", sourceLocation: sourceLocation)
}

@Test func migrationsApplyOnceAndDetectEditedFiles() throws {
    let conninfo = try TemporaryPostgres.shared.createDatabase()
    let connection = try Connection(conninfo)
    let migrator = try Migrator(folder: migrationsFolder)
    #expect(try migrator.apply(to: connection) == migrator.migrations.map(\.version))
    #expect(try migrator.apply(to: connection).isEmpty)

    let edited = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID())")
    try FileManager.default.createDirectory(at: edited, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: edited) }
    for migration in migrator.migrations {
        try (migration.sql + "\n-- edited").write(to: edited.appendingPathComponent(migration.name), atomically: true, encoding: .utf8)
    }
    #expect(throws: MigrationError.checksumMismatch(version: 1, name: "0001_initial.sql")) {
        try Migrator(folder: edited).apply(to: Connection(conninfo))
    }
}

@Test func concurrentMigratorsDoNotRace() throws {
    let conninfo = try TemporaryPostgres.shared.createDatabase()
    let migrator = try Migrator(folder: migrationsFolder)
    let results = ThreadSafeBox<[Result<[Int], Error>]>([])
    let threads = (0..<4).map { _ in
        Thread {
            let outcome = Result { try migrator.apply(to: Connection(conninfo)) }
            results.mutate { $0.append(outcome) }
        }
    }
    for thread in threads { thread.start() }
    while results.value.count < 4 { Thread.sleep(forTimeInterval: 0.01) }
    let applied = try results.value.map { try $0.get() }
    #expect(applied.filter { !$0.isEmpty }.count == 1, "exactly one migrator applies the files")
}

@Test func claimCompleteAndFirstWriteWins() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(5))
    #expect(try store.progress(job: job).counts == [.queued: 5])

    let first = try store.claim(workerID: "a", capabilities: anyModel, limit: 2, leaseSeconds: 30)
    let second = try store.claim(workerID: "b", capabilities: anyModel, limit: 10, leaseSeconds: 30)
    #expect(first.map(\.parameters.prompt) == ["p0", "p1"])
    #expect(second.count == 3)
    #expect(Set(first.map(\.taskID)).isDisjoint(with: second.map(\.taskID)))
    #expect(first.allSatisfy { $0.attempt == 1 })

    let header = WireMessage.ResultHeader(taskID: first[0].taskID, attempt: 1, width: 64, height: 64, seed: 0)
    #expect(try store.complete(header, png: Data([6]), workerID: "b") == .stale, "only the lease holder's result is stored")
    var wrongSize = header
    wrongSize.width = 32
    #expect(
        try store.complete(wrongSize, png: Data([6]), workerID: "a") == .rejected("the task asks for 64x64, the result is 32x64"),
        "a result of another size is refused")
    #expect(try store.complete(header, png: Data([1, 2, 3]), workerID: "a") == .stored)
    #expect(try store.complete(header, png: Data([9, 9, 9]), workerID: "a") == .alreadyDone, "a late duplicate is acknowledged and dropped")
    var stale = header
    stale.taskID = first[1].taskID
    stale.attempt = 7
    #expect(try store.complete(stale, png: Data([4]), workerID: "a") == .stale, "another attempt's result is dropped")
    #expect(try store.images(job: job).map(\.png) == [Data([1, 2, 3])])
    #expect(try store.progress(job: job).counts == [.done: 1, .running: 4])
    try expectCountsConsistent(store)
}

@Test func failuresBackOffRetryAndBlocklistTheWorker() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "j", model: "m", maxAttempts: 4, tasks: tasks(2))
    let claimed = try store.claim(workerID: "a", capabilities: anyModel, limit: 2, leaseSeconds: 30)
    #expect(try store.fail(.init(taskID: claimed[0].taskID, attempt: 1, kind: .input, message: "bad prompt"), workerID: "a") == .stored)
    // With a real backoff the host failure is not claimable at once.
    store.retry.baseDelay = 60
    #expect(try store.fail(.init(taskID: claimed[1].taskID, attempt: 1, kind: .host, message: "oom"), workerID: "a") == .stored)
    #expect(try store.progress(job: job).counts == [.failed: 1, .queued: 1])
    #expect(try store.claim(workerID: "b", capabilities: anyModel, limit: 5, leaseSeconds: 30).isEmpty, "backing off")
    try store.testConnection.query("UPDATE tasks SET not_before = now() WHERE id = $1", [claimed[1].taskID])
    store.retry.baseDelay = 0
    // A second host failure by worker a in this job blocklists it for the job.
    let again = try store.claim(workerID: "a", capabilities: anyModel, limit: 5, leaseSeconds: 30)
    #expect(again.map(\.attempt) == [2])
    #expect(try store.fail(.init(taskID: again[0].taskID, attempt: 2, kind: .host, message: "oom"), workerID: "a") == .stored)
    #expect(try store.claim(workerID: "a", capabilities: anyModel, limit: 5, leaseSeconds: 30).isEmpty, "blocklisted")
    let other = try store.claim(workerID: "b", capabilities: anyModel, limit: 5, leaseSeconds: 30)
    #expect(other.map(\.attempt) == [3])
    #expect(try store.fail(.init(taskID: other[0].taskID, attempt: 3, kind: .host, message: "x"), workerID: "b") == .stored)
    let last = try store.claim(workerID: "c", capabilities: anyModel, limit: 5, leaseSeconds: 30)
    #expect(try store.fail(.init(taskID: last[0].taskID, attempt: 4, kind: .host, message: "x"), workerID: "c") == .stored)
    #expect(try store.progress(job: job).counts == [.failed: 2], "out of attempts")
    #expect(try store.fail(.init(taskID: last[0].taskID, attempt: 4, kind: .host, message: "x"), workerID: "c") == .stale)
    // retry-failed gives both tasks fresh attempts and clears the blocklist.
    #expect(try store.retryFailed(job: job) == 2)
    #expect(try store.claim(workerID: "a", capabilities: anyModel, limit: 5, leaseSeconds: 30).map(\.attempt) == [1, 1])
    try expectCountsConsistent(store)
}

@Test func expiredLeasesAndLostWorkersGoBackToTheQueue() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(3))
    _ = try store.claim(workerID: "gone", capabilities: anyModel, limit: 1, leaseSeconds: 0.01)
    _ = try store.claim(workerID: "lost", capabilities: anyModel, limit: 2, leaseSeconds: 300)
    Thread.sleep(forTimeInterval: 0.05)
    #expect(try store.requeueExpired() == 1)
    #expect(try store.requeueWorker("lost") == 2)
    #expect(try store.progress(job: job).counts == [.queued: 3])
    #expect(try store.claim(workerID: "b", capabilities: anyModel, limit: 3, leaseSeconds: 30).map(\.attempt) == [2, 2, 2])
    try expectCountsConsistent(store)
}

@Test func claimRunsOnlyWhatTheWorkerCan() throws {
    let store = try migratedStore()
    let small = try store.enqueue(name: "small", model: "m", tasks: tasks(1))
    let big = try store.enqueue(name: "big", model: "m", tasks: tasks(1, width: 1024, height: 1024))
    let other = try store.enqueue(name: "other", model: "x", tasks: tasks(1, model: "x"))
    let urgent = try store.enqueue(name: "urgent", model: "m", priority: 5, tasks: tasks(1))
    let limited = WorkerCapabilities(models: ["m"], maxPixels: 512 * 512)
    try store.pause(job: small)
    let first = try store.claim(workerID: "w", capabilities: limited, limit: 10, leaseSeconds: 30)
    #expect(
        first.map(\.parameters.prompt) == ["p0"] && first.count == 1,
        "only the urgent job's task: small is paused, big too large, other another model")
    #expect(try store.progress(job: urgent).counts == [.running: 1])
    try store.resume(job: small)
    #expect(try store.claim(workerID: "w", capabilities: limited, limit: 10, leaseSeconds: 30).count == 1)
    #expect(try store.progress(job: big).counts == [.queued: 1])
    #expect(try store.claim(workerID: "w2", capabilities: WorkerCapabilities(models: ["m", "x"]), limit: 10, leaseSeconds: 30).count == 2)
    try store.cancel(job: other)
    #expect(try store.progress(job: other).counts == [.cancelled: 1])
    try expectCountsConsistent(store)
}

@Test func cancelPauseAndTaskCancel() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(4))
    let running = try store.claim(workerID: "w", capabilities: anyModel, limit: 1, leaseSeconds: 30)
    try store.cancel(task: running[0].taskID + 1)
    #expect(try store.progress(job: job).counts == [.running: 1, .queued: 2, .cancelled: 1])
    try store.cancel(job: job)
    #expect(try store.progress(job: job).counts == [.cancelled: 4])
    let late = WireMessage.ResultHeader(taskID: running[0].taskID, attempt: 1, width: 64, height: 64, seed: 0)
    #expect(try store.complete(late, png: Data([1]), workerID: "w") == .stale, "a cancelled task's result is dropped")
    #expect(throws: PostgresError.self) { try store.testConnection.query("DELETE FROM tasks WHERE id = $1", [running[0].taskID]) }
    try expectCountsConsistent(store)
}

/// A large job is cancelled over several connections, in ranges of its tasks' indexes; a cancel cut short
/// (the job cancelled, its queued tasks not yet) is finished by running it again or by the coordinator.
@Test func largeCancelsRunInPartsAndInterruptedOnesAreFinished() throws {
    let store = try migratedStore()
    store.cancelPartSize = 5
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(23))
    let keep = try store.enqueue(name: "keep", model: "m", tasks: tasks(3))
    let running = try store.claim(workerID: "w", capabilities: anyModel, limit: 2, leaseSeconds: 30)
    #expect(running.allSatisfy { $0.jobID == job })
    try store.cancel(job: job)
    #expect(try store.progress(job: job).counts == [.cancelled: 23])
    #expect(try store.progress(job: keep).counts == [.queued: 3], "another job's tasks are untouched")
    let events = try store.testConnection.query("SELECT count(*) AS n FROM events WHERE kind = 'job.cancelled' AND job_id = $1", [job])
    #expect(try events.single().decode("n", as: Int.self) == 1)

    // Cut short: the job row says cancelled, its tasks are still queued (and nothing claims them).
    let cut = try store.enqueue(name: "cut", model: "m", tasks: tasks(7))
    try store.testConnection.query("UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = $1", [cut])
    #expect(try store.claim(workerID: "w", capabilities: anyModel, limit: 10, leaseSeconds: 30).allSatisfy { $0.jobID == keep })
    #expect(try store.finishInterruptedCancels() == 7)
    #expect(try store.progress(job: cut).counts == [.cancelled: 7])
    #expect(try store.finishInterruptedCancels() == 0)
    // Cancelling again is harmless: nothing changes, no second event.
    try store.cancel(job: job)
    #expect(try store.progress(job: job).counts == [.cancelled: 23])
    #expect(
        try store.testConnection.query("SELECT count(*) AS n FROM events WHERE kind = 'job.cancelled' AND job_id = $1", [job])
            .single().decode("n", as: Int.self) == 1)
    // Retrying the failed tasks of a cancelled job would queue work that nothing claims.
    let failing = try store.enqueue(name: "f", model: "x", tasks: tasks(2, model: "x"))
    let claimed = try store.claim(workerID: "w", capabilities: WorkerCapabilities(models: ["x"]), limit: 1, leaseSeconds: 30)
    #expect(try store.fail(.init(taskID: claimed[0].taskID, attempt: 1, kind: .input, message: "bad"), workerID: "w") == .stored)
    try store.cancel(job: failing)
    #expect(try store.retryFailed(job: failing) == 0)
    #expect(try store.progress(job: failing).counts == [.failed: 1, .cancelled: 1])
    try expectCountsConsistent(store)
}

/// Two claimers on separate connections, many rounds: no task is ever handed to both,
/// and every task ends done exactly once.
@Test func concurrentClaimersNeverShareATask() throws {
    let conninfo = try TemporaryPostgres.shared.createDatabase()
    let setup = try Connection(conninfo)
    try Migrator(folder: migrationsFolder).apply(to: setup)
    let job = try JobStore(connection: setup).enqueue(name: "race", model: "m", tasks: tasks(400))
    let claimed = ThreadSafeBox<[String: [Int64]]>([:])
    let finished = ThreadSafeBox(0)
    for worker in ["w1", "w2", "w3"] {
        Thread {
            do {
                let store = JobStore(connection: try Connection(conninfo))
                var mine: [Int64] = []
                while true {
                    let batch = try store.claim(workerID: worker, capabilities: anyModel, limit: 3, leaseSeconds: 30)
                    if batch.isEmpty { break }
                    for task in batch {
                        mine.append(task.taskID)
                        let header = WireMessage.ResultHeader(taskID: task.taskID, attempt: task.attempt, width: 64, height: 64, seed: 0)
                        #expect(try store.complete(header, png: Data([UInt8(task.taskID & 0xFF)]), workerID: worker) == .stored)
                    }
                }
                claimed.mutate { $0[worker] = mine }
            } catch {
                Issue.record("\(worker): \(error)")
            }
            finished.mutate { $0 += 1 }
        }.start()
    }
    while finished.value < 3 { Thread.sleep(forTimeInterval: 0.01) }
    let all = claimed.value.values.flatMap { $0 }
    #expect(all.count == 400 && Set(all).count == 400, "\(all.count) claims, \(Set(all).count) distinct tasks")
    #expect(claimed.value.values.allSatisfy { !$0.isEmpty }, "every claimer got work")
    let store = JobStore(connection: setup)
    #expect(try store.progress(job: job).counts == [.done: 400])
    #expect(try store.images(job: job).count == 400)
    try expectCountsConsistent(store)
}

@Test func enqueueNotifiesAndInputsAreStoredOnce() throws {
    let conninfo = try TemporaryPostgres.shared.createDatabase()
    let connection = try Connection(conninfo)
    try Migrator(folder: migrationsFolder).apply(to: connection)
    let listener = try Connection(conninfo)
    try listener.listen(JobStore.workChannel)
    let store = JobStore(connection: connection)
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(100))
    let notes = try listener.notifications(timeout: 5)
    #expect(notes.map(\.payload) == [String(job)])
    let mask = Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) })
    let ids = try connection.query("SELECT id FROM tasks WHERE job_id = $1", [job]).rows.map { try $0.decode("id", as: Int64.self) }
    for id in ids { try store.attachInput(task: id, role: "mask", data: mask) }
    #expect(try connection.query("SELECT count(*) AS n FROM input_blobs").single().decode("n", as: Int.self) == 1)
    #expect(try connection.query("SELECT count(*) AS n FROM task_inputs").single().decode("n", as: Int.self) == 100)
    #expect(throws: PostgresError.self) {
        try connection.query("INSERT INTO input_blobs (sha256, data) VALUES ($1, $2)", [Data(repeating: 0, count: 32), mask])
    }
}

@Test func invalidTasksAreRejectedNamingTheField() throws {
    let store = try migratedStore()
    let bad = [TaskParameters(prompt: "ok"), TaskParameters(prompt: "ok", steps: 0)]
    #expect(throws: ValidationFailure(field: "tasks[1].steps", message: "must be 1...500, got 0")) {
        try store.enqueue(name: "j", model: "m", tasks: bad)
    }
}

@Test func schemaRefusesRunningTaskWithoutLease() throws {
    let store = try migratedStore()
    _ = try store.enqueue(name: "j", model: "m", tasks: [TaskParameters(prompt: "p")])
    #expect(throws: PostgresError.self) { try store.testConnection.query("UPDATE tasks SET state = 'running'") }
    #expect(throws: PostgresError.self) { try store.testConnection.query("DELETE FROM events") }
    #expect(throws: PostgresError.self) { try store.testConnection.query("UPDATE jobs SET done_count = done_count + 1") }
}

@Test func progressExtendsTheLeaseOfTheCurrentAttemptOnly() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(1))
    let task = try store.claim(workerID: "w", capabilities: anyModel, limit: 1, leaseSeconds: 0.2)[0]
    #expect(try store.progress(.init(taskID: task.taskID, attempt: 1, step: 1, total: 2), leaseSeconds: 60))
    #expect(try !store.progress(.init(taskID: task.taskID, attempt: 9, step: 1, total: 2), leaseSeconds: 60), "another attempt's progress is ignored")
    Thread.sleep(forTimeInterval: 0.3)
    #expect(try store.requeueExpired() == 0, "the lease was extended to 60 s")
    let row = try store.testConnection.query("SELECT step, total_steps FROM tasks WHERE id = $1", [task.taskID]).single()
    #expect(try row.decode("step", as: Int.self) == 1 && row.decode("total_steps", as: Int.self) == 2)
    #expect(try store.progress(job: job).counts == [.running: 1])
}

@Test func loadedModelWinsAmongEqualPriorities() throws {
    let store = try migratedStore()
    let older = try store.enqueue(name: "a", model: "a", tasks: tasks(2, model: "a"))
    let newer = try store.enqueue(name: "b", model: "b", tasks: tasks(2, model: "b"))
    let both = WorkerCapabilities(models: ["a", "b"])
    let first = try store.claim(workerID: "w", capabilities: both, limit: 1, leaseSeconds: 30, preferredModel: "b")
    #expect(first.first?.parameters.model == "b", "the worker has b loaded")
    let second = try store.claim(workerID: "w2", capabilities: both, limit: 1, leaseSeconds: 30)
    #expect(second.first?.parameters.model == "a", "without a loaded model, the older job first")
    let urgent = try store.enqueue(name: "c", model: "a", priority: 1, tasks: tasks(1, model: "a"))
    let third = try store.claim(workerID: "w", capabilities: both, limit: 1, leaseSeconds: 30, preferredModel: "b")
    #expect(try store.progress(job: urgent).counts == [.running: 1] && third.count == 1, "priority still comes first")
    _ = (older, newer)
}

@Test func tasksWithoutASizeAreClaimed() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "native", model: "m", tasks: [TaskParameters(prompt: "a fox", model: "m", steps: 2)])
    let claimed = try store.claim(
        workerID: "w1", capabilities: WorkerCapabilities(models: ["m"], maxPixels: 64 * 64), limit: 5,
        leaseSeconds: 30)
    #expect(claimed.count == 1 && claimed.first?.jobID == job, "a task that leaves its size to the model must be dispatched")
    #expect(claimed.first?.parameters.width == nil && claimed.first?.parameters.height == nil)
}

@Test func cordonSurvivesADropoutAndNamesStayWithTheirKeys() throws {
    let store = try migratedStore()
    let hello = WireMessage.Hello(workerID: "w1", host: "h", models: ["m"], slots: 1)
    #expect(try store.registerWorker(hello, publicKey: "A") == .online)
    #expect(try store.setWorkerState("w1", .cordoned))
    // The worker drops out (declared lost) and comes back: still cordoned, as the operator left it.
    try store.requeueWorker("w1")
    #expect(try store.workerStates(["w1"]) == ["w1": .cordoned])
    #expect(try store.registerWorker(hello, publicKey: "A") == .cordoned)
    #expect(try store.setWorkerState("w1", .online))
    try store.requeueWorker("w1")
    #expect(try store.workerStates(["w1"]) == ["w1": .lost])
    #expect(try store.registerWorker(hello, publicKey: "A") == .online)
    // The name belongs to the key that used it first; another key is turned away and changes nothing.
    #expect(try store.registerWorker(hello, publicKey: "B") == nil)
    #expect(try store.testConnection.query("SELECT public_key FROM workers WHERE id = 'w1'").single().decode("public_key", as: String.self) == "A")
}

@Test func jobsWhoseTasksAllFinishAreDone() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks(2))
    func state() throws -> String { try store.testConnection.query("SELECT state FROM jobs WHERE id = $1", [job]).single().decode("state") }
    let claimed = try store.claim(workerID: "w", capabilities: anyModel, limit: 2, leaseSeconds: 30)
    #expect(
        try store.complete(.init(taskID: claimed[0].taskID, attempt: 1, width: 64, height: 64, seed: 0), png: Data([1]), workerID: "w") == .stored)
    #expect(try state() == "active")
    #expect(try store.fail(.init(taskID: claimed[1].taskID, attempt: 1, kind: .input, message: "bad"), workerID: "w") == .stored)
    #expect(try state() == "done", "every task finished (one failed): the job is done")
    #expect(try store.retryFailed(job: job) == 1)
    #expect(try state() == "active", "a retry reopens it")
}
