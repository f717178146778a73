import Coordinator
import FarmModel
import Foundation
import JobSpec
import JobStore
import Postgres
import TestSupport
import Testing
import Worker
import ZeroMQ

/// The farm at the size a team uses it: run on its own after the suite (Deploy/test.sh), so that its timings
/// are the machine's.
@Suite(.serialized) struct FarmScale {
    /// A million-task job submitted through the spec parser and the store, workers rendering it, and one worker
    /// whose models match nothing: the coordinator's loop stays quick (each pass, which answers every heartbeat,
    /// under 100 ms at the 99th percentile) and no worker is ever declared lost.
    @Test func aMillionTaskJobAndAWorkerMatchingNothingStallNothing() throws {
        let (conninfo, connection) = try migratedDatabase()
        let store = JobStore(connection: connection)
        let spec = try JobSpec.parse(
            "name: million\nmodel: synthetic\ndefaults: {steps: 2, width: 32, height: 32}\n"
                + "sweep: {prompt: [a fox in the snow], seed: 1-1000000}", file: "million.yaml")
        #expect(spec.tasks.count == 1_000_000)
        let job = try store.enqueue(name: spec.name, model: spec.model, tasks: spec.tasks)

        let context = ZMQContext()
        var settings = CoordinatorConfiguration(listen: "tcp://127.0.0.1:*")
        (settings.heartbeatSeconds, settings.missedHeartbeats) = (0.25, 4)
        let lines = ThreadSafeBox<[String]>([])
        let coordinator = try makeCoordinator(conninfo, settings: settings, context: context, logger: collectingLogger(into: lines))
        let stop = ThreadSafeBox(false)
        let stopped = ThreadSafeBox(0)
        let workers: [(name: String, models: [String])] = [("r1", ["synthetic"]), ("r2", ["synthetic"]), ("idle", ["demo"])]
        for (name, models) in workers {
            var configuration = WorkerConfiguration(coordinator: coordinator.endpoint, workerID: name)
            configuration.slots = 2
            startWorkerThread(
                configuration, context: context, stop: stop, renderer: { TestPatternRenderer(models: models, delay: 0.01) },
                finished: { stopped.mutate { $0 += 1 } })
        }
        var passes: [Double] = []
        let started = Date()
        while Date().timeIntervalSince(started) < 15 {
            let before = Date()
            try coordinator.runOnce(timeout: 0.02)
            passes.append(Date().timeIntervalSince(before))
        }
        stop.mutate { $0 = true }
        while stopped.value < workers.count { try coordinator.runOnce(timeout: 0.02) }

        let sorted = passes.sorted()
        let p99 = sorted[Int(Double(sorted.count - 1) * 0.99)]
        let worst = sorted.last ?? 0
        let done = try store.progress(job: job).counts[.done, default: 0]
        print(
            "million-task job: \(passes.count) coordinator passes, p99 \(String(format: "%.1f", p99 * 1000)) ms, worst "
                + "\(String(format: "%.1f", worst * 1000)) ms; \(done) tasks done in 15 s")
        #expect(p99 < 0.1, "the coordinator's pass took \(p99) s at the 99th percentile")
        #expect(!lines.value.contains { $0.contains(" lost after ") }, "\(lines.value.filter { $0.contains("lost") }.prefix(5))")
        #expect(done > 100, "the matching workers rendered only \(done) tasks")
        #expect(try connection.query("SELECT count(*) AS n FROM tasks WHERE lease_owner = 'idle'").single().decode("n", as: Int.self) == 0)
    }

    /// A million-task submission over HTTP does not hold up other requests: each goes to the least busy database
    /// connection, and the spec is expanded off the cooperative pool.
    @Test func aMillionTaskSubmitDoesNotBlockTheAPI() throws {
        let farm = try HTTPFarm()
        let spec = Data(
            "name: million\nmodel: synthetic\ndefaults: {steps: 2, width: 32, height: 32}\nsweep: {prompt: [a fox], seed: 1-1000000}".utf8)
        let submitted = ThreadSafeBox<Int?>(nil)
        Thread {
            let answer = try? httpRequest("POST", "\(farm.server)/v1/jobs", token: farm.admin, body: spec)
            submitted.mutate { $0 = answer?.status ?? -1 }
        }.start()
        Thread.sleep(forTimeInterval: 0.5)
        var slowest = 0.0
        var listed = 0
        while submitted.value == nil {
            let before = Date()
            let answer = try httpRequest("GET", "\(farm.server)/v1/jobs", token: farm.submit)
            slowest = max(slowest, Date().timeIntervalSince(before))
            #expect(answer.status == 200)
            listed += 1
            Thread.sleep(forTimeInterval: 0.2)
        }
        print("during a 1,000,000-task submit: \(listed) job listings, the slowest \(String(format: "%.2f", slowest)) s")
        #expect(submitted.value == 201)
        #expect(listed >= 3, "the submit finished before the API could be measured")
        #expect(slowest < 2, "GET /v1/jobs took \(slowest) s while a big submission ran")
    }
}
