import Coordinator
import FarmModel
import Foundation
import Imaging
import JobStore
import Postgres
import TestSupport
import Testing
import Worker
import ZeroMQ

/// A client on the worker socket that speaks the protocol but not honestly: a plain DEALER socket.
private final class RogueClient {
    let socket: Socket

    init(_ context: ZMQContext, endpoint: String) throws {
        socket = try Socket(context, .dealer)
        try socket.connect(endpoint)
    }

    func send(_ message: WireMessage) throws { try socket.send(message.frames()) }

    /// The next message from the coordinator, serving it meanwhile; nil after `seconds`.
    func receive(
        serving coordinator: CoordinatorServer, seconds: Double = 5,
        where accept: (WireMessage) -> Bool = { _ in true }
    ) throws -> WireMessage? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            try coordinator.runOnce(timeout: 0.02)
            while let frames = try socket.receive(dontWait: true) {
                if let message = try? WireMessage(frames: frames), accept(message) { return message }
            }
        }
        return nil
    }
}

private func serve(_ coordinator: CoordinatorServer, seconds: Double) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline { try coordinator.runOnce(timeout: 0.02) }
}

private func taskRow(_ connection: Connection, _ task: Int64) throws -> (state: String, attempt: Int, owner: String?, step: Int, error: String?) {
    let row = try connection.query("SELECT state, attempt, lease_owner, step, error_message FROM tasks WHERE id = $1", [task]).single()
    return (
        try row.decode("state"), try row.decode("attempt"), try row.decodeIfPresent("lease_owner", as: String.self), try row.decode("step"),
        try row.decodeIfPresent("error_message", as: String.self)
    )
}

/// A rogue peer cannot store a result, progress or failure for a task it does not lease, cannot take a live
/// worker's name, is refused for absurd slots, and an undecodable PNG, even from the lease holder, is not stored:
/// the task goes back to the queue.
@Test func rogueClientsCannotTouchOthersTasksOrNames() throws {
    let (conninfo, connection) = try migratedDatabase()
    let store = JobStore(connection: connection)
    let job = try store.enqueue(
        name: "honest", model: "test-pattern",
        tasks: [
            TaskParameters(prompt: "a card", model: "test-pattern", width: 32, height: 24, steps: 4, seed: 1)
        ])
    let task: Int64 = try connection.query("SELECT id FROM tasks WHERE job_id = $1", [job]).single().decode("id")

    let context = ZMQContext()
    var settings = CoordinatorConfiguration(listen: "tcp://127.0.0.1:*")
    settings.progressFlushSeconds = 0.05
    let coordinator = try makeCoordinator(conninfo, settings: settings, context: context)
    let stop = ThreadSafeBox(false)
    let refusedTwin = ThreadSafeBox<String?>(nil)
    func startWorker(_ name: String, twin: Bool) {
        startWorkerThread(
            WorkerConfiguration(coordinator: coordinator.endpoint, workerID: name), context: context, stop: stop,
            renderer: { TestPatternRenderer(delay: 6) },
            onError: twin ? { error in refusedTwin.mutate { $0 = "\(error)" } } : nil)
    }
    startWorker("real", twin: false)
    let leased = Date().addingTimeInterval(20)
    while try taskRow(connection, task).owner != "real" && Date() < leased { try coordinator.runOnce(timeout: 0.02) }
    #expect(try taskRow(connection, task).owner == "real")

    // A second worker started with the live name is refused, says why and stops (it does not hang).
    startWorker("real", twin: true)
    let twinDeadline = Date().addingTimeInterval(10)
    while refusedTwin.value == nil && Date() < twinDeadline { try coordinator.runOnce(timeout: 0.02) }
    #expect(refusedTwin.value?.contains("in use") == true, "\(refusedTwin.value ?? "the second worker got no answer")")

    // A rogue under its own name: welcomed, but nothing it says about the real worker's task counts.
    let rogue = try RogueClient(context, endpoint: coordinator.endpoint)
    try rogue.send(.hello(.init(workerID: "rogue", host: "evil", models: ["nothing"], slots: 1)))
    let welcome = try rogue.receive(serving: coordinator)
    guard case .welcome = welcome else {
        Issue.record("rogue not welcomed: \(String(describing: welcome))")
        return
    }
    try rogue.send(.progress(.init(taskID: task, attempt: 1, step: 4, total: 4)))
    try rogue.send(.preview(.init(taskID: task, attempt: 1, step: 4, total: 4), png: Data("x".utf8)))
    try rogue.send(.result(.init(taskID: task, attempt: 1, width: 32, height: 24, seed: 1), png: Data("NOT A PNG <script>alert(1)</script>".utf8)))
    let fake = try PNGImage(width: 32, height: 24, format: .rgb, pixels: [UInt8](repeating: 7, count: 32 * 24 * 3)).pngData()
    try rogue.send(.result(.init(taskID: task, attempt: 1, width: 32, height: 24, seed: 1), png: fake))
    try rogue.send(.failed(.init(taskID: task, attempt: 1, kind: .input, message: "rogue says so")))
    try serve(coordinator, seconds: 0.5)
    var row = try taskRow(connection, task)
    #expect(row.state == "running" && row.owner == "real" && row.attempt == 1, "\(row)")
    #expect(row.step < 4, "the rogue's progress was stored")
    #expect(coordinator.previews[task] == nil, "the rogue's preview was kept")
    #expect(try store.images(job: job).isEmpty)

    // An impostor under the real worker's name is refused by name, and its silence later costs the real worker nothing.
    let impostor = try RogueClient(context, endpoint: coordinator.endpoint)
    try impostor.send(.hello(.init(workerID: "real", host: "evil", models: ["test-pattern"], slots: 1)))
    let refusal = try impostor.receive(serving: coordinator)
    guard case .refused(let refused) = refusal else {
        Issue.record("impostor not refused: \(String(describing: refusal))")
        return
    }
    #expect(refused.code == .nameInUse)
    for slots in [0, -3, 100_000] {
        let greedy = try RogueClient(context, endpoint: coordinator.endpoint)
        try greedy.send(.hello(.init(workerID: "greedy\(slots)", host: "h", models: ["test-pattern"], slots: slots)))
        guard case .refused(let answer) = try greedy.receive(serving: coordinator) else {
            Issue.record("slots \(slots) not refused")
            continue
        }
        #expect(answer.code == .badHello && answer.reason.contains("slots"), "\(answer)")
    }

    // The real worker finishes: its image, a real PNG, is the one stored.
    let finished = Date().addingTimeInterval(30)
    while try !store.progress(job: job).isFinished && Date() < finished { try coordinator.runOnce(timeout: 0.02) }
    row = try taskRow(connection, task)
    #expect(row.state == "done" && row.attempt == 1, "\(row)")
    let stored = try #require(try store.images(job: job).first)
    let image = try PNGImage(pngData: stored.png)
    #expect(image.width == 32 && image.height == 24 && image.textValue("parameters")?.hasPrefix("a card") == true)
    #expect(stored.png != fake)

    // An undecodable result from the lease holder itself is not stored: the attempt fails and the task is queued again.
    let other = try store.enqueue(
        name: "garbage", model: "rogue-model",
        tasks: [
            TaskParameters(prompt: "x", model: "rogue-model", width: 32, height: 24, steps: 1, seed: 2)
        ])
    let cheat = try RogueClient(context, endpoint: coordinator.endpoint)
    try cheat.send(.hello(.init(workerID: "cheat", host: "h", models: ["rogue-model"], slots: 1)))
    _ = try cheat.receive(serving: coordinator) { if case .welcome = $0 { true } else { false } }
    guard case .assign(let assignment) = try cheat.receive(serving: coordinator, where: { if case .assign = $0 { true } else { false } }) else {
        Issue.record("no task handed to the cheat")
        return
    }
    try cheat.send(
        .result(
            .init(taskID: assignment.taskID, attempt: assignment.attempt, width: 32, height: 24, seed: 2),
            png: Data("NOT A PNG".utf8)))
    let ack = try cheat.receive(serving: coordinator) { if case .ack = $0 { true } else { false } }
    #expect(ack != nil, "the rejected result is acknowledged, so the worker forgets it")
    row = try taskRow(connection, assignment.taskID)
    #expect(row.state == "queued" && row.error?.contains("result rejected: not a decodable PNG") == true, "\(row)")
    #expect(try store.images(job: other).isEmpty)
    stop.mutate { $0 = true }
    try serve(coordinator, seconds: 0.3)
}
