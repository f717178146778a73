import Coordinator
import FarmModel
import Foundation
import JobStore
import Postgres
import TestSupport
import Testing
import Worker
import ZeroMQ

/// A database that stops answering (another session holds `tasks` and `workers` locked for three times the
/// worker timeout) does not stop the coordinator's loop: heartbeats are answered at once throughout, no worker is
/// declared lost, and the work goes on when the lock is released. Statements wait on the coordinator's database
/// thread, not on the loop that answers workers.
@Test func aStalledDatabaseDoesNotHoldUpHeartbeats() throws {
    let (conninfo, _) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let job = try store.enqueue(
        name: "stall", model: "test-pattern",
        tasks: (0..<20).map {
            TaskParameters(prompt: "a card", model: "test-pattern", width: 32, height: 24, steps: 4, seed: UInt64($0))
        })
    let context = ZMQContext()
    var settings = CoordinatorConfiguration(listen: "tcp://127.0.0.1:*")
    (settings.heartbeatSeconds, settings.missedHeartbeats) = (0.2, 5)
    let lines = ThreadSafeBox<[String]>([])
    let coordinator = try makeCoordinator(conninfo, settings: settings, context: context, logger: collectingLogger(into: lines))
    let stop = ThreadSafeBox(false)
    let stopped = ThreadSafeBox(false)
    startWorkerThread(
        WorkerConfiguration(coordinator: coordinator.endpoint, workerID: "renderer"), context: context, stop: stop,
        renderer: { TestPatternRenderer(delay: 0.1) }, finished: { stopped.mutate { $0 = true } })

    // A plain socket that says HELLO and times the coordinator's answer to each of its heartbeats.
    let probe = try Socket(context, .dealer)
    try probe.connect(coordinator.endpoint)
    try probe.send(WireMessage.hello(.init(workerID: "probe", host: "test", models: ["nothing"], slots: 1)).frames())
    var welcomed = false
    var answers: [Double] = []
    var lastBeat = Date.distantPast
    /// Serves the coordinator for `seconds`, the probe beating every 0.2 s once the last beat was answered
    /// (`answers`: seconds to each answer, -1 while one is awaited).
    func pump(_ seconds: Double) throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if welcomed, Date().timeIntervalSince(lastBeat) >= 0.2, answers.last.map({ $0 >= 0 }) ?? true {
                try probe.send(WireMessage.heartbeat(.init(freeSlots: 0)).frames())
                lastBeat = Date()
                answers.append(-1)
            }
            try coordinator.runOnce(timeout: 0.01)
            while let frames = try probe.receive(dontWait: true) {
                switch try? WireMessage(frames: frames) {
                case .welcome: welcomed = true
                case .heartbeat: if answers.last == -1 { answers[answers.count - 1] = Date().timeIntervalSince(lastBeat) }
                default: break
                }
            }
        }
    }
    try pump(0.5)
    let started = Date()
    while try coordinator.connectedWorkers < 2 || store.progress(job: job).counts[.done, default: 0] == 0 {
        try pump(0.1)
        guard Date().timeIntervalSince(started) < 30 else { break }
    }
    #expect(welcomed && coordinator.connectedWorkers == 2, "the worker and the probe joined")

    let locker = try Connection(conninfo)
    try locker.query("BEGIN")
    try locker.query("LOCK TABLE tasks, workers IN ACCESS EXCLUSIVE MODE")
    let before = answers.count
    try pump(3)
    var during = Array(answers[before...])
    // A beat sent in the last moments may still be on its way.
    if during.last == -1 && Date().timeIntervalSince(lastBeat) < 0.5 { during.removeLast() }
    try locker.query("COMMIT")
    let finished = Date().addingTimeInterval(60)
    while try !store.progress(job: job).isFinished && Date() < finished { try pump(0.1) }
    stop.mutate { $0 = true }
    while !stopped.value { try coordinator.runOnce(timeout: 0.02) }

    print(
        "heartbeat answers while the database was locked for 3 s: \(during.count), worst "
            + "\(String(format: "%.1f", (during.max() ?? -1) * 1000)) ms")
    #expect(during.count >= 8, "the probe's heartbeats went unanswered: \(during)")
    #expect(during.allSatisfy { $0 >= 0 && $0 < 0.5 }, "heartbeats waited for the database: \(during)")
    #expect(!lines.value.contains { $0.contains(" lost after ") }, "\(lines.value.filter { $0.contains("lost") }.prefix(5))")
    #expect(try store.progress(job: job).counts == [.done: 20], "the work went on after the lock was released")
}
