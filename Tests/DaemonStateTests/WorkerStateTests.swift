import FarmModel
import Foundation
import Testing
import Worker

// The worker's rules, driven message by message through `WorkerState`: no socket, no render thread, the clock
// moved by hand.

/// A worker state machine with the actions of the last event kept for inspection.
struct WorkerHarness {
    var state: WorkerState
    var now = ContinuousClock.now
    var actions: [WorkerAction] = []

    init(endpoints: [String] = ["tcp://a:1"], slots: Int = 1) {
        var configuration = WorkerConfiguration(coordinators: endpoints, workerID: "w1")
        configuration.slots = slots
        configuration.reconnectBackoff = (1, 8)
        configuration.failOverSeconds = 8
        configuration.resendSeconds = 5
        state = WorkerState(
            configuration: configuration, introduction: .init(workerID: "w1", host: "h", models: ["demo"], slots: slots), now: now)
    }

    mutating func advance(_ seconds: Double) { now = now.adding(seconds: seconds) }
    mutating func tick() { actions = state.tick(now: now) }
    mutating func receive(_ message: WireMessage) { actions = state.received(message, now: now) }

    var sent: [WireMessage] { actions.compactMap { if case .send(let message) = $0 { return message } else { return nil } } }
    var hellos: [WireMessage.Hello] { sent.compactMap { if case .hello(let hello) = $0 { return hello } else { return nil } } }

    mutating func welcome() { receive(.welcome(.init(heartbeatSeconds: 1, timeoutSeconds: 5))) }
}

func task(_ id: Int64) -> WireMessage.Assignment {
    .init(taskID: id, attempt: 1, parameters: TaskParameters(prompt: "p"), jobID: 1)
}

@Test func introductionsBackOffAndFailOverToTheNextCoordinator() {
    var worker = WorkerHarness(endpoints: ["tcp://a:1", "tcp://b:1"])
    var helloTimes: [Double] = []
    var connects: [String] = []
    for tenth in 0...300 {
        worker.tick()
        if !worker.hellos.isEmpty { helloTimes.append(Double(tenth) / 10) }
        connects += worker.actions.compactMap { if case .connect(let endpoint) = $0 { endpoint } else { nil } }
        worker.advance(0.1)
    }
    // 2, 4, 8 s apart; the first introduction due after 8 s unanswered goes to the next endpoint, the backoff
    // starting again.
    #expect(helloTimes == [0, 2, 6, 14, 16, 20, 28, 30])
    #expect(Array(connects.prefix(2)) == ["tcp://b:1", "tcp://a:1"])
}

@Test func heartbeatsCarryFreeSlotsAndSilenceMeansIntroducingAgain() {
    var worker = WorkerHarness(endpoints: ["tcp://a:1", "tcp://b:1"], slots: 2)
    worker.tick()
    worker.welcome()
    #expect(worker.actions.contains(.connected(true)))
    worker.receive(.assign(task(1)))
    worker.tick()
    #expect(worker.sent == [.heartbeat(.init(freeSlots: 1, state: "busy"))])
    worker.advance(0.5)
    worker.tick()
    #expect(worker.sent.isEmpty, "one heartbeat a heartbeat period")
    worker.advance(0.5)
    worker.receive(.assign(task(2)))
    worker.receive(.assign(task(2)))
    worker.tick()
    #expect(worker.sent == [.heartbeat(.init(freeSlots: 0, state: "busy"))], "a repeated assignment takes no second slot")
    // The coordinator falls silent for longer than its timeout: introduce again, to the next endpoint.
    worker.advance(5.5)
    worker.tick()
    #expect(worker.actions.contains(.connected(false)))
    #expect(worker.actions.contains(.connect(endpoint: "tcp://b:1")))
    worker.tick()
    #expect(worker.hellos.first?.activeTasks == [1, 2], "the tasks it holds are named so they are not handed out again")
}

@Test func resultsAreResentUntilAcknowledged() {
    var worker = WorkerHarness()
    worker.tick()
    worker.welcome()
    worker.receive(.assign(task(3)))
    worker.actions = worker.state.startNextRender()
    #expect(worker.actions == [.startRender(task(3), inputs: [:])])
    #expect(worker.state.startNextRender().isEmpty, "one render at a time")
    let result = WireMessage.result(.init(taskID: 3, attempt: 1, width: 8, height: 8, seed: 0), png: Data([1]))
    worker.actions = worker.state.renderFinished(result, now: worker.now)
    #expect(worker.sent == [result])
    worker.advance(5)
    worker.receive(.heartbeat(.init(freeSlots: 0)))
    worker.tick()
    #expect(worker.sent.contains(result), "resent after resendSeconds")
    // A new coordinator (fail-over, restart) gets it at once on its welcome.
    worker.receive(.refused(.init(.unknownWorker, "unknown worker: send HELLO first")))
    worker.tick()
    #expect(worker.hellos.first?.activeTasks == [3])
    worker.welcome()
    #expect(worker.sent == [result])
    worker.receive(.ack(taskID: 3, attempt: 1))
    worker.advance(5)
    worker.tick()
    #expect(!worker.sent.contains(result))
    #expect(worker.state.unacknowledged.isEmpty)
}

@Test func drainingFinishesTheWorkInHandAndRefusesMore() {
    var worker = WorkerHarness(slots: 2)
    worker.tick()
    worker.welcome()
    worker.receive(.assign(task(1)))
    _ = worker.state.startNextRender()
    worker.receive(.drain)
    worker.advance(1)
    worker.tick()
    #expect(worker.sent == [.heartbeat(.init(freeSlots: 0, state: "draining"))])
    worker.receive(.assign(task(2)))
    guard case .failed(let refusal)? = worker.sent.first else {
        Issue.record("an assignment while draining was not handed back")
        return
    }
    #expect(refusal.taskID == 2 && refusal.kind == .host)
    #expect(!worker.state.isDrained)
    worker.receive(.ack(taskID: 2, attempt: 1))
    _ = worker.state.renderFinished(.failed(.init(taskID: 1, attempt: 1, kind: .input, message: "x")), now: worker.now)
    #expect(!worker.state.isDrained, "not drained while a report awaits acknowledgement")
    worker.receive(.ack(taskID: 1, attempt: 1))
    #expect(worker.state.isDrained)
}

@Test func cancelStopsTheRenderInHandAndDropsQueuedTasks() {
    var worker = WorkerHarness(slots: 3)
    worker.tick()
    worker.welcome()
    for id in 1...3 { worker.receive(.assign(task(Int64(id)))) }
    _ = worker.state.startNextRender()
    worker.receive(.cancel(taskID: 2))
    #expect(worker.actions.isEmpty)
    #expect(worker.state.queue.map(\.taskID) == [1, 3])
    worker.receive(.cancel(taskID: 1))
    #expect(worker.actions == [.cancelRender(taskID: 1)])
}

@Test func aRefusalOtherThanUnknownWorkerStopsTheWorker() {
    var worker = WorkerHarness()
    worker.tick()
    worker.receive(.refused(.init(.nameInUse, "the name w1 is in use")))
    #expect(worker.actions == [.stop("the name w1 is in use")])
}

@Test func inputImagesAreKeptWithinTheBudgetAndHandedToTheRender() {
    var worker = WorkerHarness()
    worker.state.blobBudgetBytes = 10
    worker.tick()
    worker.welcome()
    worker.receive(.blob(sha256: "a", data: Data(count: 6)))
    worker.receive(.blob(sha256: "b", data: Data(count: 6)))
    var needsBoth = task(1)
    needsBoth.parameters.initImage = "a"
    needsBoth.parameters.mask = "b"
    worker.receive(.assign(needsBoth))
    #expect(worker.state.startNextRender() == [.startRender(needsBoth, inputs: ["b": Data(count: 6)])], "the oldest went over budget")
}
