import Coordinator
import FarmModel
import Foundation
import JobStore
import Testing
import Worker

// How a worker's cached store models travel: HELLO and heartbeats from the worker's state machine, into the
// coordinator's claims and the database once per change.

/// A worker with a model cache says so in HELLO (`fetchesModels`, `modelHashes`) and sends its current list with
/// every heartbeat, so that a fetch or an eviction reaches the coordinator.
@Test func workerAnnouncesItsCachedModelsInHelloAndHeartbeats() {
    let (first, second) = (String(repeating: "a", count: 64), String(repeating: "b", count: 64))
    var start = ContinuousClock.now
    var state = WorkerState(
        configuration: WorkerConfiguration(coordinator: "tcp://127.0.0.1:1", workerID: "w"),
        introduction: .init(workerID: "w", host: "h", models: ["demo"], slots: 1), now: start)
    state.modelHashes = [first]
    state.fetchesModels = true
    let hello = state.tick(now: start).compactMap { action -> WireMessage.Hello? in
        if case .send(.hello(let hello)) = action { return hello } else { return nil }
    }.first
    #expect(hello?.modelHashes == [first] && hello?.fetchesModels == true)
    _ = state.received(.welcome(.init(heartbeatSeconds: 1, timeoutSeconds: 5)), now: start)
    state.modelHashes = [first, second]
    start = start.adding(seconds: 2)
    let beat = state.tick(now: start).compactMap { action -> WireMessage.Heartbeat? in
        if case .send(.heartbeat(let beat)) = action { return beat } else { return nil }
    }.first
    #expect(beat?.modelHashes == [first, second])
}

/// A heartbeat's list of cached store models goes into the worker's claims and is written once per change; a list a
/// HELLO would refuse is ignored.
@Test func heartbeatsCarryCachedModelsIntoClaimsOncePerChange() {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice")
    let hash = String(repeating: "a", count: 64)
    func written() -> [[String]?] {
        farm.queries.compactMap { if case .touchWorker(_, _, let hashes) = $0 { return hashes } else { return nil } }
    }
    farm.receive(.heartbeat(.init(freeSlots: 1, modelHashes: [hash])), from: alice)
    #expect(written() == [[hash]])
    #expect(farm.state.workers[alice]?.capabilities(Limits()).modelHashes == [hash])
    farm.answer(.touchWorker("alice", loadedModel: nil, modelHashes: [hash]), .done)
    farm.receive(.heartbeat(.init(freeSlots: 1, modelHashes: [hash])), from: alice)
    #expect(written() == [nil], "an unchanged list is not written again")
    farm.answer(.touchWorker("alice", loadedModel: nil), .done)
    farm.receive(.heartbeat(.init(freeSlots: 1, modelHashes: ["not-a-hash"])), from: alice)
    #expect(written() == [nil])
    #expect(farm.state.workers[alice]?.hello.modelHashes == [hash])
}
