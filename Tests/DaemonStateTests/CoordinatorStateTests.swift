import Coordinator
import FarmModel
import Foundation
import Imaging
import JobStore
import Testing

// The coordinator's rules, driven message by message through `CoordinatorState`: no socket, no database, the
// clock moved by hand.

/// A coordinator state machine with the actions of the last event kept for inspection.
struct CoordinatorHarness {
    var state: CoordinatorState
    var now: Instant
    var actions: [CoordinatorAction] = []

    init(configure: (inout CoordinatorConfiguration) -> Void = { _ in }) {
        var configuration = CoordinatorConfiguration(listen: "tcp://127.0.0.1:0")
        configuration.heartbeatSeconds = 1
        configuration.missedHeartbeats = 5
        configure(&configuration)
        now = ContinuousClock.now
        state = CoordinatorState(configuration: configuration, now: now)
    }

    mutating func advance(_ seconds: Double) { now = now.adding(seconds: seconds) }

    mutating func receive(_ message: WireMessage, from peer: Data, key: String? = nil, isConnected: (Data) -> Bool = { _ in false }) {
        actions = state.received(message, from: peer, publicKey: key, now: now, isConnected: isConnected)
    }

    mutating func tick() { actions = state.tick(now: now) }

    mutating func answer(_ request: DatabaseRequest, _ answer: DatabaseAnswer?) {
        actions = state.answered(request, answer, now: now)
    }

    /// Joins a worker: HELLO, the registration answered with `operatorState`.
    mutating func join(_ peer: Data, name: String, slots: Int = 1, operatorState: WorkerStatus = .online) {
        receive(.hello(.init(workerID: name, host: "host", models: ["demo"], slots: slots)), from: peer)
        guard let register = queries.first(where: { if case .registerWorker = $0 { true } else { false } }) else {
            Issue.record("\(name) was not registered: \(actions)")
            return
        }
        answer(register, .registered(operatorState: operatorState))
    }

    var sent: [(message: WireMessage, to: Data)] {
        actions.compactMap { if case .send(let message, let peer) = $0 { return (message, peer) } else { return nil } }
    }

    var queries: [DatabaseRequest] {
        actions.compactMap { if case .query(let request) = $0 { return request } else { return nil } }
    }

    var claims: [ClaimRequest] {
        queries.compactMap { if case .claim(let claim) = $0 { return claim } else { return nil } }
    }

    var metrics: [CoordinatorMetric] {
        actions.compactMap { if case .metric(let metric) = $0 { return metric } else { return nil } }
    }

    var logs: [String] {
        actions.compactMap { if case .log(_, let message, _) = $0 { return message } else { return nil } }
    }
}

let alice = Data("alice#1".utf8)
let bob = Data("bob#1".utf8)

func assignment(_ task: Int64, attempt: Int = 1, job: Int64 = 7) -> WireMessage.Assignment {
    .init(taskID: task, attempt: attempt, parameters: TaskParameters(prompt: "p", width: 8, height: 8), jobID: job)
}

func resultPNG(width: Int = 8, height: Int = 8) throws -> Data {
    try PNGImage(width: width, height: height, format: .rgb, pixels: [UInt8](repeating: 9, count: width * height * 3)).pngData()
}

@Test func helloIsRegisteredThenWelcomed() {
    var farm = CoordinatorHarness()
    farm.receive(.hello(.init(workerID: "alice", host: "h", models: ["demo"], slots: 2)), from: alice)
    #expect(farm.sent.isEmpty, "nothing is said before the database has registered the worker")
    let register = farm.queries.first
    guard case .registerWorker(let hello, nil, alice)? = register else {
        Issue.record("no registration: \(farm.actions)")
        return
    }
    #expect(hello.workerID == "alice")
    // A heartbeat while registering is neither refused nor counted: the worker resends until welcomed.
    farm.receive(.heartbeat(.init(freeSlots: 2)), from: alice)
    #expect(farm.actions.isEmpty)
    farm.answer(register!, .registered(operatorState: .online))
    #expect(farm.sent.map(\.message) == [.welcome(.init(heartbeatSeconds: 1, timeoutSeconds: 5))])
    #expect(farm.state.workers[alice]?.freeSlots == 2)
}

@Test func refusalsCarryCodes() {
    var farm = CoordinatorHarness()
    farm.receive(.heartbeat(.init(freeSlots: 1)), from: alice)
    #expect(farm.sent.first?.message == .refused(.init(.unknownWorker, "unknown worker: send HELLO first")))
    farm.receive(.hello(.init(workerID: "alice", host: "h", version: 99, models: ["demo"], slots: 1)), from: alice)
    guard case .refused(let refusal)? = farm.sent.first?.message else {
        Issue.record("no refusal")
        return
    }
    #expect(refusal.code == .protocolVersion)
    farm.receive(.hello(.init(workerID: "alice", host: "h", models: ["demo"], slots: 100_000)), from: alice)
    #expect(farm.sent.first.map { if case .refused(let r) = $0.message { r.code == .badHello } else { false } } == true)
    // The name's registration answered "bound to another key".
    farm.receive(.hello(.init(workerID: "alice", host: "h", models: ["demo"], slots: 1)), from: alice)
    farm.answer(farm.queries[0], .registered(operatorState: nil))
    #expect(farm.sent.first.map { if case .refused(let r) = $0.message { r.code == .nameBoundToOtherKey } else { false } } == true)
    #expect(farm.state.workers.isEmpty)
}

@Test func aNameIsRefusedWhileItsConnectionLivesAndGivenUpWhenItIsGone() {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice")
    let impostor = Data("alice#2".utf8)
    farm.receive(.hello(.init(workerID: "alice", host: "h", models: ["demo"], slots: 1)), from: impostor, isConnected: { $0 == alice })
    #expect(farm.sent.first.map { if case .refused(let r) = $0.message { r.code == .nameInUse } else { false } } == true)
    #expect(farm.queries.isEmpty)
    // The first connection has lost its link (its process was killed): the name goes to the new one.
    farm.receive(.hello(.init(workerID: "alice", host: "h", models: ["demo"], slots: 1)), from: impostor, isConnected: { _ in false })
    #expect(farm.state.workers[alice] == nil)
    #expect(farm.queries.count == 1)
}

@Test func silentWorkersAreLostAndTheirTasksRequeued() {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice")
    farm.join(bob, name: "bob")
    // Bob keeps beating; alice falls silent.
    for _ in 0..<5 {
        farm.advance(1)
        farm.receive(.heartbeat(.init(freeSlots: 1)), from: bob)
        #expect(farm.sent.map(\.message) == [.heartbeat(.init(freeSlots: 0))])
        farm.tick()
        #expect(farm.state.workers[alice] != nil, "lost before its five heartbeats were missed")
    }
    farm.advance(1)
    farm.tick()
    #expect(farm.state.workers[alice] == nil)
    #expect(farm.state.workers[bob] != nil)
    #expect(farm.queries.contains { if case .requeueWorker("alice") = $0 { true } else { false } })
    #expect(farm.logs.contains { $0.contains("worker alice lost after 5 missed heartbeats") })
    let requeue = farm.queries.first { if case .requeueWorker = $0 { true } else { false } }!
    farm.answer(requeue, .requeued(2))
    #expect(farm.metrics == [.requeued(2, reason: "worker_lost")])
}

@Test func claimsAskForFreeSlotsOnlyAndSendImagesFirst() throws {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice", slots: 2)
    farm.tick()
    #expect(farm.claims.map(\.limit) == [2])
    let claim = farm.claims[0]
    // A second pass waits for the first claim's answer.
    farm.tick()
    #expect(farm.claims.isEmpty)
    var withImage = assignment(1)
    withImage.parameters.initImage = "ab"
    farm.answer(.claim(claim), .claimed(Claimed(assignments: [(withImage, 0.5), (assignment(2), 0.1)], blobs: [("ab", Data([1]))])))
    #expect(
        farm.sent.map(\.message) == [.blob(sha256: "ab", data: Data([1])), .assign(withImage), .assign(assignment(2))])
    #expect(farm.metrics == [.dispatchLatency(seconds: 0.5), .dispatchLatency(seconds: 0.1)])
    // Both slots are taken: no claim for alice until one is reported.
    farm.tick()
    #expect(farm.claims.isEmpty)
    farm.receive(.failed(.init(taskID: 2, attempt: 1, kind: .input, message: "boom")), from: alice)
    farm.answer(farm.queries[0], .reported(.stored))
    #expect(farm.sent.map(\.message) == [.ack(taskID: 2, attempt: 1)])
    farm.tick()
    #expect(farm.claims.map(\.limit) == [1])
    #expect(farm.claims.first?.sentBlobs == ["ab"], "an image is sent to a worker once")
}

@Test func aClaimAnsweredAfterItsWorkerLeftIsReleased() {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice")
    farm.tick()
    let claim = farm.claims[0]
    farm.advance(10)
    farm.tick()
    #expect(farm.state.workers.isEmpty)
    farm.answer(.claim(claim), .claimed(Claimed(assignments: [(assignment(5), 0)])))
    #expect(farm.sent.isEmpty)
    #expect(farm.queries.contains { if case .releaseUnsent([5], "alice") = $0 { true } else { false } })
}

@Test func drainAndCordonStopClaimsAndDrainIsSentOnce() {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice")
    farm.join(bob, name: "bob", operatorState: .cordoned)
    farm.tick()
    #expect(farm.claims.map(\.workerID) == ["alice"], "a cordoned worker gets no claim")
    let upkeep = farm.queries.first { if case .upkeep = $0 { true } else { false } }!
    farm.answer(.claim(farm.claims[0]), .claimed(Claimed(assignments: [])))
    farm.answer(upkeep, .upkeep(Upkeep(states: ["alice": .draining, "bob": .cordoned])))
    #expect(farm.sent.map(\.message) == [.drain])
    #expect(farm.sent.map(\.to) == [alice])
    for _ in 0..<2 {
        farm.advance(1)
        farm.receive(.heartbeat(.init(freeSlots: 1)), from: alice)
        farm.receive(.heartbeat(.init(freeSlots: 1)), from: bob)
        farm.tick()
        #expect(farm.claims.isEmpty, "a draining or cordoned worker gets no claim")
        let upkeep = farm.queries.first { if case .upkeep = $0 { true } else { false } }!
        farm.answer(upkeep, .upkeep(Upkeep(states: ["alice": .draining, "bob": .cordoned])))
        #expect(farm.sent.isEmpty, "DRAIN is said once")
    }
    // Uncordoned and back online: claims resume.
    farm.advance(1)
    farm.tick()
    farm.answer(farm.queries.first { if case .upkeep = $0 { true } else { false } }!, .upkeep(Upkeep(states: ["alice": .online, "bob": .online])))
    farm.tick()
    #expect(Set(farm.claims.map(\.workerID)) == ["alice", "bob"])
}

@Test func onlyTheHolderReportsProgressAndResultsAreAcknowledgedOnceStored() throws {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice")
    farm.join(bob, name: "bob")
    farm.tick()
    let aliceClaim = farm.claims.first { $0.workerID == "alice" }!
    farm.answer(.claim(aliceClaim), .claimed(Claimed(assignments: [(assignment(1), 0)])))
    // Bob does not hold task 1: his progress and previews are dropped.
    farm.receive(.progress(.init(taskID: 1, attempt: 1, step: 3, total: 8)), from: bob)
    #expect(farm.actions.isEmpty)
    farm.receive(.preview(.init(taskID: 1, attempt: 1, step: 3, total: 8), png: Data([1])), from: bob)
    #expect(farm.state.previews.isEmpty)
    farm.receive(.progress(.init(taskID: 1, attempt: 1, step: 3, total: 8)), from: alice)
    #expect(farm.actions.contains { if case .post(let event) = $0 { event.name == "progress" && event.job == 7 } else { false } })
    // The first progress is written at the next pass, whatever the flush period.
    farm.tick()
    #expect(farm.queries.contains { if case .progress(let reports, let started, _) = $0 { reports.count == 1 && started == [1] } else { false } })

    // A result: not acknowledged while the database is away (the worker resends), nor twice while it is stored.
    let png = try resultPNG()
    let header = WireMessage.ResultHeader(taskID: 1, attempt: 1, width: 8, height: 8, seed: 0)
    farm.receive(.result(header, png: png), from: alice)
    let complete = farm.queries[0]
    farm.receive(.result(header, png: png), from: alice)
    #expect(farm.queries.isEmpty, "a resend while the result is being stored is dropped")
    farm.answer(complete, nil)
    #expect(farm.sent.isEmpty)
    farm.receive(.result(header, png: png), from: alice)
    farm.answer(farm.queries[0], .reported(.stored))
    #expect(farm.sent.map(\.message) == [.ack(taskID: 1, attempt: 1)])
    #expect(farm.metrics == [.imageStored])
    #expect(farm.actions.contains { if case .post(let event) = $0 { event.name == "done" } else { false } })
    // A stale result (its lease moved on) is acknowledged so the worker stops resending, but not counted.
    farm.receive(.result(header, png: png), from: alice)
    farm.answer(farm.queries[0], .reported(.stale))
    #expect(farm.sent.map(\.message) == [.ack(taskID: 1, attempt: 1)])
    #expect(farm.metrics.isEmpty)
}

@Test func aResultThatIsNotItsPNGFailsTheAttempt() throws {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice")
    let header = WireMessage.ResultHeader(taskID: 4, attempt: 2, width: 16, height: 16, seed: 0)
    farm.receive(.result(header, png: try resultPNG()), from: alice)
    guard case .fail(let failure, "alice", alice)? = farm.queries.first else {
        Issue.record("not failed: \(farm.actions)")
        return
    }
    #expect(failure.kind == .host && failure.message.contains("the PNG is 8x8 but the result says 16x16"))
    farm.receive(.result(header, png: Data("not a png".utf8)), from: alice)
    #expect(farm.queries.isEmpty, "one report of a task at a time")
}

@Test func cancelledTasksAreCalledBackAndExpiredLeasesCounted() {
    var farm = CoordinatorHarness()
    farm.join(alice, name: "alice", slots: 2)
    farm.tick()
    let firstUpkeep = farm.queries.first { if case .upkeep = $0 { true } else { false } }!
    farm.answer(.claim(farm.claims[0]), .claimed(Claimed(assignments: [(assignment(1), 0), (assignment(2), 0)])))
    farm.answer(firstUpkeep, .upkeep(Upkeep()))
    farm.advance(1)
    farm.tick()
    guard case .upkeep(let held, let names)? = farm.queries.first(where: { if case .upkeep = $0 { true } else { false } }) else {
        Issue.record("no upkeep")
        return
    }
    #expect(Set(held) == [1, 2] && names == ["alice"])
    farm.answer(.upkeep(held: held, workers: names), .upkeep(Upkeep(roundTrip: 0.002, cancelled: [2], expired: 3)))
    #expect(farm.sent.map(\.message) == [.cancel(taskID: 2)])
    #expect(farm.state.workers[alice]?.freeSlots == 1)
    #expect(farm.metrics == [.databaseRoundTrip(seconds: 0.002), .leaseExpiries(3), .requeued(3, reason: "lease_expired")])
}

@Test func curveKeysAreCheckedAgainstTheAllowListAndRevocationsReachLiveConnections() {
    var farm = CoordinatorHarness {
        $0.curveSecretKey = "secret"
        $0.keyCheckSeconds = 10
    }
    // The handshake: no key is refused at once; a key waits for the allow-list.
    farm.actions = farm.state.handshake(publicKey: nil, now: farm.now)
    #expect(farm.actions.contains { if case .answerHandshake(false) = $0 { true } else { false } })
    farm.actions = farm.state.handshake(publicKey: "K", now: farm.now)
    #expect(farm.state.awaitingHandshake)
    farm.answer(.isKeyAllowed("K", forHandshake: true), .keyAllowed(true))
    #expect(farm.actions.contains { if case .answerHandshake(true) = $0 { true } else { false } })
    farm.receive(.hello(.init(workerID: "alice", host: "h", models: ["demo"], slots: 1)), from: alice)
    #expect(farm.actions.isEmpty, "a message without a CURVE key is ignored")
    farm.receive(.hello(.init(workerID: "alice", host: "h", models: ["demo"], slots: 1)), from: alice, key: "K")
    farm.answer(farm.queries[0], .registered(operatorState: .online))
    #expect(farm.state.workers[alice] != nil)
    // Ten seconds on, the next message re-reads the allow-list: the key was revoked.
    farm.advance(10)
    farm.receive(.heartbeat(.init(freeSlots: 1)), from: alice, key: "K")
    #expect(farm.queries.contains { if case .isKeyAllowed("K", false) = $0 { true } else { false } })
    farm.answer(.isKeyAllowed("K", forHandshake: false), .keyAllowed(false))
    farm.receive(.heartbeat(.init(freeSlots: 1)), from: alice, key: "K")
    #expect(farm.sent.isEmpty, "a revoked key's messages are ignored")
    // No database during a handshake: the key's last answer stands.
    farm.actions = farm.state.handshake(publicKey: "K", now: farm.now)
    farm.answer(.isKeyAllowed("K", forHandshake: true), nil)
    #expect(farm.actions.contains { if case .answerHandshake(false) = $0 { true } else { false } })
}
