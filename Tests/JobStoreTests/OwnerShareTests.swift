import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Testing

/// Tags, quotas, fair share and priorities, in the claim itself against a real PostgreSQL.
@Suite struct OwnerShareTests {
    /// A task that requires tags goes only to a worker that has all of them; untagged tasks go anywhere.
    @Test func tagsRouteTasks() throws {
        let store = try migratedStore()
        var gpu = TaskParameters(prompt: "gpu", model: "m", width: 64, height: 64, steps: 2)
        gpu.require = ["gpu"]
        var big = TaskParameters(prompt: "gpu and memory", model: "m", width: 64, height: 64, steps: 2)
        big.require = ["gpu", "big-memory"]
        let plain = TaskParameters(prompt: "plain", model: "m", width: 64, height: 64, steps: 2)
        _ = try store.enqueue(name: "tags", model: "m", tasks: [gpu, big, plain])
        func claim(_ worker: String, _ tags: [String]) throws -> [String] {
            try store.claim(workerID: worker, capabilities: WorkerCapabilities(models: ["m"], tags: tags), limit: 5, leaseSeconds: 30)
                .map(\.parameters.prompt)
        }
        #expect(try claim("cpu", ["cpu"]) == ["plain"])
        #expect(try claim("small-gpu", ["gpu"]) == ["gpu"])
        #expect(try claim("other", []).isEmpty)
        #expect(try claim("big-gpu", ["big-memory", "gpu", "x"]) == ["gpu and memory"])
        let plan = try store.claimPlan(workerID: "w", capabilities: WorkerCapabilities(models: ["m"], tags: ["gpu"]), limit: 4)
        #expect(!plan.contains("Seq Scan on tasks"), "\(plan)")
        try expectCountsConsistent(store)
    }

    /// At equal priority the claims alternate between owners by running tasks over weight, whoever submitted first;
    /// a weight of 3 gets three tasks for the other's one.
    @Test func ownersShareClaimsByWeight() throws {
        let store = try migratedStore()
        let large = try store.enqueue(name: "large", model: "m", owner: "alice", tasks: tasks(200))
        let small = try store.enqueue(name: "small", model: "m", owner: "bob", tasks: tasks(10))
        var owners: [Int64] = []
        for worker in 0..<8 {
            owners += try store.claim(workerID: "w\(worker)", capabilities: anyModel, limit: 1, leaseSeconds: 30).compactMap(\.jobID)
        }
        #expect(owners.filter { $0 == large }.count == 4 && owners.filter { $0 == small }.count == 4, "\(owners)")
        // One claim of several slots interleaves the owners too.
        let batch = try store.claim(workerID: "wide", capabilities: anyModel, limit: 6, leaseSeconds: 30).compactMap(\.jobID)
        #expect(batch.filter { $0 == small }.count == 3, "\(batch)")

        let weighted = try migratedStore()
        try weighted.setQuota(owner: "alice", maxQueued: nil, maxRunning: nil, weight: 3)
        let heavy = try weighted.enqueue(name: "a", model: "m", owner: "alice", tasks: tasks(100))
        _ = try weighted.enqueue(name: "b", model: "m", owner: "bob", tasks: tasks(100))
        let claimed = try weighted.claim(workerID: "w", capabilities: anyModel, limit: 8, leaseSeconds: 30).compactMap(\.jobID)
        #expect(claimed.filter { $0 == heavy }.count == 6, "\(claimed)")
        try expectCountsConsistent(store)
    }

    /// A running quota caps an owner's running tasks even within one claim; its other tasks wait and the others'
    /// go first. A queued quota refuses a submission that would pass it, with a line saying so.
    @Test func quotasCapRunningAndRefuseSubmissions() throws {
        let store = try migratedStore()
        try store.setQuota(owner: "alice", maxQueued: 30, maxRunning: 3)
        let capped = try store.enqueue(name: "a", model: "m", owner: "alice", tasks: tasks(20))
        #expect(try store.claim(workerID: "w", capabilities: anyModel, limit: 8, leaseSeconds: 30).count == 3)
        #expect(try store.claim(workerID: "v", capabilities: anyModel, limit: 8, leaseSeconds: 30).isEmpty)
        let other = try store.enqueue(name: "b", model: "m", owner: "bob", tasks: tasks(5))
        #expect(
            try store.claim(workerID: "v", capabilities: anyModel, limit: 8, leaseSeconds: 30).compactMap(\.jobID)
                == Array(repeating: other, count: 5))
        #expect(try store.progress(job: capped).counts == [.running: 3, .queued: 17])
        // 17 queued + 13 = 30 passes; one more does not.
        _ = try store.enqueue(name: "fits", model: "m", owner: "alice", tasks: tasks(13))
        #expect {
            try store.enqueue(name: "over", model: "m", owner: "alice", tasks: tasks(1))
        } throws: { error in
            (error as? ValidationFailure)?.message.contains("may have 30 tasks queued and has 30") == true
        }
        #expect(
            try store.quotas().first { $0.owner == "alice" }
                == OwnerQuota(owner: "alice", maxQueued: 30, maxRunning: 3, weight: 1, queued: 30, running: 3))
        try expectCountsConsistent(store)
    }

    /// A job's priority changes after submission and its tasks go first from then on.
    @Test func priorityChangesAfterSubmission() throws {
        let store = try migratedStore()
        _ = try store.enqueue(name: "first", model: "m", tasks: tasks(5))
        let second = try store.enqueue(name: "second", model: "m", tasks: tasks(5))
        #expect(try store.setPriority(job: second, priority: 10))
        #expect(try store.claim(workerID: "w", capabilities: anyModel, limit: 1, leaseSeconds: 30).compactMap(\.jobID) == [second])
        #expect(try store.jobs().first { $0.id == second }?.priority == 10)
        #expect(try !store.setPriority(job: 999_999, priority: 1))
        #expect(throws: ValidationFailure.self) { try store.setPriority(job: second, priority: 5_000) }
    }
}
