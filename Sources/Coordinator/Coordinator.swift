import FarmModel
import Foundation
import JobStore
import ZeroMQ

/// Settings of a coordinator daemon.
public struct CoordinatorConfiguration: Sendable {
    /// ZeroMQ endpoint workers connect to, e.g. `tcp://0.0.0.0:5555`.
    public var listen: String
    /// Seconds between heartbeats each way.
    public var heartbeatSeconds: Double = 2
    /// Silence after which a worker is declared lost.
    public var workerTimeoutSeconds: Double = 10
    /// How long a task's lease lasts without progress.
    public var leaseSeconds: Double = 60
    /// The farm's input limits.
    public var limits = Limits()

    /// Settings with defaults for everything but the endpoint.
    public init(listen: String) {
        self.listen = listen
    }
}

/// What the coordinator knows of one connected worker.
struct ConnectedWorker {
    var routingID: Data
    var hello: WireMessage.Hello
    var lastSeen: Date
    var inFlight: Set<Int64> = []

    var freeSlots: Int { max(0, hello.slots - inFlight.count) }
}

/// The coordinator daemon: accepts workers on a ROUTER socket, hands them queued
/// tasks from the job store (no more than each has room for), and stores what they send back.
public final class CoordinatorServer {
    private let configuration: CoordinatorConfiguration
    private let store: JobStore
    private let socket: Socket
    private var workers: [Data: ConnectedWorker] = [:]
    private var lastSweep = Date.distantPast
    /// Called with a line for the log.
    public var log: (String) -> Void = { print($0) }

    /// Binds the ROUTER socket; the endpoint actually bound is in `endpoint`.
    public init(configuration: CoordinatorConfiguration, store: JobStore, context: ZMQContext) throws {
        self.configuration = configuration
        self.store = store
        socket = try Socket(context, .router)
        try socket.setMaxMessageSize(configuration.limits.maxMessageBytes)
        try socket.bind(configuration.listen)
    }

    /// The endpoint the socket is bound to (with the real port when `:*` was asked).
    public var endpoint: String { socket.lastEndpoint }

    /// Workers currently connected.
    public var connectedWorkers: Int { workers.count }

    /// Serves until `shouldStop` returns true; checks it at least every `tick` seconds.
    public func run(tick: Double = 0.2, shouldStop: () -> Bool) throws {
        while !shouldStop() {
            try runOnce(timeout: tick)
        }
    }

    /// Handles every message that arrives within `timeout` seconds, then dispatches and sweeps.
    public func runOnce(timeout: Double) throws {
        var poller = Poller()
        poller.add(.socket(socket))
        if try poller.poll(timeout: timeout)[0] {
            while let frames = try socket.receive(dontWait: true) {
                handle(frames)
            }
        }
        try dispatch()
        try sweep()
    }

    private func handle(_ frames: [Data]) {
        guard frames.count >= 2 else { return }
        let routingID = frames[0]
        let message: WireMessage
        do {
            message = try WireMessage(frames: Array(frames.dropFirst()), maxBytes: configuration.limits.maxMessageBytes)
        } catch {
            log("dropped message from \(routingID.hexPrefix): \(error)")
            return
        }
        do {
            try handle(message, from: routingID)
        } catch {
            log("error handling \(message.typeName) from \(routingID.hexPrefix): \(error)")
        }
    }

    private func send(_ message: WireMessage, to routingID: Data) throws {
        try socket.send([routingID] + message.frames(), dontWait: true)
    }

    private func handle(_ message: WireMessage, from routingID: Data) throws {
        if case .hello(let hello) = message {
            guard hello.version == WireMessage.protocolVersion else {
                try send(.refused(reason: "protocol version \(hello.version) is not supported; this coordinator speaks \(WireMessage.protocolVersion)"), to: routingID)
                return
            }
            try store.registerWorker(hello)
            workers[routingID] = ConnectedWorker(routingID: routingID, hello: hello, lastSeen: Date())
            try send(.welcome(.init(heartbeatSeconds: configuration.heartbeatSeconds,
                                    timeoutSeconds: configuration.workerTimeoutSeconds)), to: routingID)
            log("worker \(hello.workerID) on \(hello.host) joined with \(hello.slots) slot(s)")
            return
        }
        guard var worker = workers[routingID] else {
            // A worker we do not know (e.g. after a coordinator restart) must introduce itself again.
            try send(.refused(reason: "unknown worker: send HELLO first"), to: routingID)
            return
        }
        worker.lastSeen = Date()
        defer { workers[routingID] = worker }
        switch message {
        case .heartbeat:
            try store.touchWorker(worker.hello.workerID)
            try send(.heartbeat(freeSlots: 0), to: routingID)
        case .progress(let report):
            try store.progress(report, leaseSeconds: configuration.leaseSeconds)
        case .result(let header, let png):
            let outcome = try store.complete(header, png: png)
            worker.inFlight.remove(header.taskID)
            try send(.ack(taskID: header.taskID, attempt: header.attempt), to: routingID)
            log("task \(header.taskID) attempt \(header.attempt) from \(worker.hello.workerID): \(outcome)")
        case .failed(let failure):
            let outcome = try store.fail(failure, workerID: worker.hello.workerID)
            worker.inFlight.remove(failure.taskID)
            try send(.ack(taskID: failure.taskID, attempt: failure.attempt), to: routingID)
            log("task \(failure.taskID) attempt \(failure.attempt) failed (\(failure.kind)): \(failure.message) [\(outcome)]")
        case .hello, .welcome, .refused, .assign, .ack:
            log("ignored \(message.typeName) from worker \(worker.hello.workerID)")
        }
    }

    private func dispatch() throws {
        for (routingID, var worker) in workers where worker.freeSlots > 0 {
            let capabilities = WorkerCapabilities(models: worker.hello.models,
                                                  maxPixels: worker.hello.maxPixels ?? configuration.limits.maxPixels)
            let assignments = try store.claim(workerID: worker.hello.workerID, capabilities: capabilities,
                                              limit: worker.freeSlots, leaseSeconds: configuration.leaseSeconds)
            for assignment in assignments {
                try send(.assign(assignment), to: routingID)
                worker.inFlight.insert(assignment.taskID)
            }
            workers[routingID] = worker
        }
    }

    private func sweep() throws {
        let now = Date()
        guard now.timeIntervalSince(lastSweep) >= configuration.heartbeatSeconds else { return }
        lastSweep = now
        for (routingID, worker) in workers
        where now.timeIntervalSince(worker.lastSeen) > configuration.workerTimeoutSeconds {
            workers[routingID] = nil
            let requeued = try store.requeueWorker(worker.hello.workerID)
            log("worker \(worker.hello.workerID) lost after \(Int(configuration.workerTimeoutSeconds)) s of silence; requeued \(requeued) task(s)")
        }
        let requeued = try store.requeueExpired()
        if requeued > 0 { log("requeued \(requeued) task(s) whose lease expired") }
    }
}

extension Data {
    var hexPrefix: String { prefix(8).map { String(format: "%02x", $0) }.joined() }
}
