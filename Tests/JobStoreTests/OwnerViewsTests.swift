import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import Testing

/// Jobs by owner, the owners of jobs and tasks, a page of a job's images, and the models the farm holds.
@Test func ownersPagesAndModels() throws {
    let store = try migratedStore()
    #expect(try store.farmModels().isEmpty)
    #expect(try store.registerWorker(WireMessage.Hello(workerID: "w", host: "h", models: ["n", "m"], slots: 8)) == .online)
    #expect(try store.farmModels() == ["m", "n"])
    let job = try store.enqueue(name: "j", model: "m", owner: "alice", tasks: tasks(4))
    let other = try store.enqueue(name: "k", model: "m", owner: "bob", tasks: tasks(1))
    for task in try store.claim(workerID: "w", capabilities: anyModel, limit: 8, leaseSeconds: 60) {
        let header = WireMessage.ResultHeader(taskID: task.taskID, attempt: 1, width: 64, height: 64, seed: 0)
        #expect(try store.complete(header, png: Data([1]), workerID: "w") == .stored)
    }
    #expect(try store.jobs().map(\.id) == [job, other] && store.jobs(owner: "alice").map(\.id) == [job])
    #expect(try store.jobs(owner: "bob").map(\.owner) == ["bob"] && store.jobs(owner: "carol").isEmpty)
    #expect(try store.jobOwner(job) == "alice" && store.jobOwner(other + 1) == nil)
    let images = try store.imageList(job: job)
    #expect(images.map(\.index) == [0, 1, 2, 3])
    #expect(try store.taskOwner(images[0].task) == "alice" && store.taskOwner(0) == nil)
    #expect(try store.imageList(job: job, offset: 1, limit: 2) == Array(images[1...2]))
    #expect(try store.imageList(job: job, offset: 4, limit: 2).isEmpty)
    #expect(try store.jobDetail(job)?.owner == "alice" && store.jobDetail(job)?.tasks == 4)
}
