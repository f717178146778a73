import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import Testing

/// The admin views decode the JSON that PostgreSQL builds: the values they had when read column by column.
@Test func adminViewsCarryTheDatabaseValues() throws {
    let store = try migratedStore()
    let db = store.testConnection
    #expect(try store.registerWorker(WireMessage.Hello(workerID: "w", host: "h", models: ["m", "n"], slots: 2)) == .online)
    let job = try store.enqueue(name: "j", model: "m", priority: 3, tasks: tasks(4))
    let claimed = try store.claim(workerID: "w", capabilities: anyModel, limit: 3, leaseSeconds: 60)
    let header = WireMessage.ResultHeader(taskID: claimed[0].taskID, attempt: 1, width: 64, height: 64, seed: 0)
    #expect(try store.complete(header, png: Data([1]), workerID: "w") == .stored)
    #expect(try store.fail(.init(taskID: claimed[1].taskID, attempt: 1, kind: .input, message: "bad"), workerID: "w") == .stored)
    try db.query("UPDATE tasks SET started_at = finished_at - interval '4 seconds' WHERE id = $1", [claimed[0].taskID])
    try db.query("UPDATE tasks SET step = 1, total_steps = 2, steps_per_second = 1.3 WHERE id = $1", [claimed[2].taskID])
    try db.query("UPDATE images SET seed = 18446744073709551615")

    let created: String = try db.query("SELECT created_at::text AS c FROM jobs WHERE id = $1", [job]).single().decode("c")
    let record = try #require(try store.jobs().first)
    #expect(record.id == job && record.name == "j" && record.model == "m" && record.state == .active && record.priority == 3)
    #expect(record.tasks == 4 && record.counts.line == "queued=1 running=1 done=1 failed=1 cancelled=0" && record.created == created)
    #expect(try store.watchedJobs(job) == [record] && store.watchedJobs(job + 1).isEmpty)

    let detail = try #require(try store.jobDetail(job))
    #expect(detail.id == job && detail.counts == record.counts && detail.tasksPerSecond == 0.25 && detail.etaSeconds == 8)
    #expect(detail.failures.map(\.reason) == ["bad"] && detail.failures.map(\.tasks) == [1])
    #expect(try store.jobDetail(job + 1) == nil && store.jobCounts(job) == record.counts)
    let fresh = try store.enqueue(name: "k", model: "m", tasks: tasks(1))
    #expect(try store.jobDetail(fresh)?.tasksPerSecond == 0 && store.jobDetail(fresh)?.etaSeconds == nil)

    let worker = try #require(try store.workers().first)
    #expect(worker.name == "w" && worker.host == "h" && worker.state == .online && worker.models == "m,n" && worker.slots == 2)
    #expect(worker.running == 1 && worker.failures == 0 && worker.secondsSinceHeartbeat >= 0)
    let current = try #require(worker.current)
    #expect(current.id == claimed[2].taskID && current.job == job && current.worker == nil && current.step == 1)
    #expect(current.totalSteps == 2 && current.stepsPerSecond == 1.3)
    #expect(try store.runningTasks(job: nil).map(\.worker) == ["w"] && store.runningTasks(job: job + 1).isEmpty)
    #expect(try store.imageList(job: job).map(\.seed) == [.max] && store.imageList(job: job).map(\.task) == [claimed[0].taskID])

    let reply = try #require(try store.perform(.retry, job: job))
    #expect(reply.id == job && reply.requeued == 1 && reply.counts.failed == 0)
    #expect(try store.perform(.pause, job: job)?.requeued == nil && store.perform(.pause, job: job + 9) == nil)

    let token = try store.createToken(role: .admin, name: "t")
    #expect(try store.revokeToken(id: token.id))
    let listed = try #require(try store.tokens().first)
    #expect(listed.id == token.id && listed.role == .admin && listed.name == "t" && listed.revoked != nil && !listed.created.isEmpty)
    let key = String(repeating: "K", count: 40)
    try store.allowWorkerKey(key, name: "k")
    #expect(try store.workerKeys().map(\.publicKey) == [key] && store.workerKeys().first?.revoked == nil)

    try db.query("ALTER TABLE jobs DROP CONSTRAINT jobs_state_check")
    try db.query("UPDATE jobs SET state = 'archived' WHERE id = $1", [job])
    let mismatch = #expect(throws: SchemaMismatch.self) { try store.jobs() }
    #expect(mismatch?.description.contains("invalid String value archived") == true, "\(String(describing: mismatch))")
    #expect(throws: SchemaMismatch.self) { try store.jobDetail(job) }
}
