import FarmModel
import Foundation
import JobStore
import Postgres
import TestSupport
import Testing

/// The repository's Migrations folder, found from this file's path.
let migrationsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Migrations")

func migratedStore() throws -> JobStore {
    let connection = try Connection(try TemporaryPostgres.shared.createDatabase())
    try Migrator(folder: migrationsFolder).apply(to: connection)
    return JobStore(connection: connection)
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
    threads.forEach { $0.start() }
    while results.value.count < 4 { Thread.sleep(forTimeInterval: 0.01) }
    let applied = try results.value.map { try $0.get() }
    #expect(applied.filter { !$0.isEmpty }.count == 1, "exactly one migrator applies the files")
}

@Test func claimCompleteAndFirstWriteWins() throws {
    let store = try migratedStore()
    let tasks = (0..<5).map { TaskParameters(prompt: "p\($0)", model: "m", width: 64, height: 64, steps: 2, seed: UInt64($0)) }
    let job = try store.enqueue(name: "j", model: "m", tasks: tasks)
    #expect(try store.progress(job: job).counts == [.queued: 5])

    let first = try store.claim(workerID: "a", limit: 2, leaseSeconds: 30)
    let second = try store.claim(workerID: "b", limit: 10, leaseSeconds: 30)
    #expect(first.map(\.parameters.prompt) == ["p0", "p1"])
    #expect(second.count == 3)
    #expect(Set(first.map(\.taskID)).isDisjoint(with: second.map(\.taskID)))
    #expect(first.allSatisfy { $0.attempt == 1 })

    let header = WireMessage.ResultHeader(taskID: first[0].taskID, attempt: 1, width: 64, height: 64, seed: 0)
    #expect(try store.complete(header, png: Data([1, 2, 3])) == .stored)
    #expect(try store.complete(header, png: Data([9, 9, 9])) == .dropped, "a late duplicate is dropped")
    var stale = header
    stale.taskID = first[1].taskID
    stale.attempt = 7
    #expect(try store.complete(stale, png: Data([4])) == .dropped, "another attempt's result is dropped")
    #expect(try store.images(job: job).map(\.png) == [Data([1, 2, 3])])
    #expect(try store.progress(job: job).counts == [.done: 1, .running: 4])
}

@Test func failuresRetryHostErrorsAndStopOnInputErrors() throws {
    let store = try migratedStore()
    let tasks = (0..<2).map { TaskParameters(prompt: "p\($0)", model: "m", width: 64, height: 64, steps: 2) }
    let job = try store.enqueue(name: "j", model: "m", maxAttempts: 2, tasks: tasks)
    let claimed = try store.claim(workerID: "a", limit: 2, leaseSeconds: 30)
    #expect(try store.fail(.init(taskID: claimed[0].taskID, attempt: 1, kind: .input, message: "bad model")) == .stored)
    #expect(try store.fail(.init(taskID: claimed[1].taskID, attempt: 1, kind: .host, message: "oom")) == .stored)
    #expect(try store.progress(job: job).counts == [.failed: 1, .queued: 1])
    let retry = try store.claim(workerID: "b", limit: 5, leaseSeconds: 30)
    #expect(retry.map(\.attempt) == [2])
    #expect(try store.fail(.init(taskID: retry[0].taskID, attempt: 2, kind: .host, message: "oom again")) == .stored)
    #expect(try store.progress(job: job).counts == [.failed: 2], "out of attempts")
}

@Test func expiredLeasesGoBackToTheQueue() throws {
    let store = try migratedStore()
    let job = try store.enqueue(name: "j", model: "m", tasks: [TaskParameters(prompt: "p", width: 64, height: 64)])
    _ = try store.claim(workerID: "gone", limit: 1, leaseSeconds: 0.01)
    Thread.sleep(forTimeInterval: 0.05)
    #expect(try store.requeueExpired() == 1)
    #expect(try store.progress(job: job).counts == [.queued: 1])
    #expect(try store.claim(workerID: "b", limit: 1, leaseSeconds: 30).first?.attempt == 2)
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
    #expect(throws: PostgresError.self) { try store.connection.query("UPDATE tasks SET state = 'running'") }
    #expect(throws: PostgresError.self) { try store.connection.query("DELETE FROM events") }
}
