import FarmModel
import Foundation
import Imaging
import ZeroMQ

/// Settings of a worker daemon.
public struct WorkerConfiguration: Sendable {
    /// The coordinator's ZeroMQ endpoint.
    public var coordinator: String
    /// This worker's stable name (defaults to host name and process id).
    public var workerID: String
    /// Tasks it takes at once.
    public var slots: Int = 1
    /// Largest message accepted.
    public var maxMessageBytes = Limits().maxMessageBytes

    /// Settings for a worker of `coordinator`.
    public init(coordinator: String, workerID: String? = nil) {
        self.coordinator = coordinator
        self.workerID = workerID ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
    }
}

/// Why a worker stopped on its own.
public enum WorkerError: Error, CustomStringConvertible {
    /// The coordinator refused this worker.
    case refused(String)

    public var description: String {
        switch self {
        case .refused(let reason): return "coordinator refused this worker: \(reason)"
        }
    }
}

/// The worker daemon: introduces itself on a DEALER socket, renders what it is
/// assigned, streams progress, and resends each result until it is acknowledged.
public final class WorkerDaemon {
    private let configuration: WorkerConfiguration
    private let renderer: Renderer
    private let socket: Socket
    private var welcomed: WireMessage.Welcome?
    private var queue: [WireMessage.Assignment] = []
    /// Results and failures sent but not yet acknowledged, resent on reconnect.
    private var unacknowledged: [Int64: WireMessage] = [:]
    private var lastHeartbeatSent = Date.distantPast
    private var lastHeard = Date()
    private var lastHelloSent = Date.distantPast
    /// Called with a line for the log.
    public var log: (String) -> Void = { print($0) }
    /// Tasks this worker has finished (rendered and acknowledged or sent).
    public private(set) var rendered = 0

    /// Connects the DEALER socket (ZeroMQ reconnects by itself if the coordinator restarts).
    public init(configuration: WorkerConfiguration, renderer: Renderer, context: ZMQContext) throws {
        self.configuration = configuration
        self.renderer = renderer
        socket = try Socket(context, .dealer)
        try socket.setIdentity(configuration.workerID)
        try socket.setMaxMessageSize(configuration.maxMessageBytes)
        try socket.connect(configuration.coordinator)
    }

    private var hello: WireMessage {
        .hello(.init(workerID: configuration.workerID, host: ProcessInfo.processInfo.hostName,
                     models: renderer.models, slots: configuration.slots))
    }

    /// Works until `shouldStop` returns true; checks it at least every `tick` seconds.
    public func run(tick: Double = 0.2, shouldStop: () -> Bool) throws {
        while !shouldStop() {
            try runOnce(timeout: tick)
        }
    }

    /// Handles what arrives within `timeout` seconds, renders one queued task if any, and keeps the link alive.
    public func runOnce(timeout: Double) throws {
        let now = Date()
        if welcomed == nil, now.timeIntervalSince(lastHelloSent) >= 1 {
            try socket.send(hello.frames(), dontWait: true)
            lastHelloSent = now
        }
        var poller = Poller()
        poller.add(.socket(socket))
        if try poller.poll(timeout: queue.isEmpty ? timeout : 0)[0] {
            while let frames = try socket.receive(dontWait: true) {
                try handle(frames)
            }
        }
        if let welcome = welcomed {
            if now.timeIntervalSince(lastHeartbeatSent) >= welcome.heartbeatSeconds {
                try socket.send(WireMessage.heartbeat(freeSlots: max(0, configuration.slots - queue.count)).frames(),
                                dontWait: true)
                lastHeartbeatSent = now
            }
            if now.timeIntervalSince(lastHeard) > welcome.timeoutSeconds {
                log("coordinator silent for \(Int(welcome.timeoutSeconds)) s; introducing myself again")
                welcomed = nil
                lastHeard = now
            }
        }
        if !queue.isEmpty {
            renderNext()
        }
    }

    private func handle(_ frames: [Data]) throws {
        let message: WireMessage
        do {
            message = try WireMessage(frames: frames, maxBytes: configuration.maxMessageBytes)
        } catch {
            log("dropped message from coordinator: \(error)")
            return
        }
        lastHeard = Date()
        switch message {
        case .welcome(let welcome):
            welcomed = welcome
            log("joined coordinator \(configuration.coordinator) as \(configuration.workerID)")
            for pending in unacknowledged.values { try socket.send(pending.frames(), dontWait: true) }
        case .refused(let reason):
            if reason.hasPrefix("unknown worker") {
                welcomed = nil
            } else {
                throw WorkerError.refused(reason)
            }
        case .assign(let assignment):
            queue.append(assignment)
        case .ack(let taskID, _):
            unacknowledged[taskID] = nil
        case .heartbeat:
            break
        case .hello, .progress, .result, .failed:
            log("ignored \(message.typeName) from coordinator")
        }
    }

    private func renderNext() {
        let assignment = queue.removeFirst()
        let reply: WireMessage
        do {
            let image = try renderer.render(assignment.parameters) { step, total in
                let report = WireMessage.progress(.init(taskID: assignment.taskID, attempt: assignment.attempt,
                                                        step: step, total: total))
                _ = try? socket.send(report.frames(), dontWait: true)
                return true
            }
            reply = .result(.init(taskID: assignment.taskID, attempt: assignment.attempt, width: image.width,
                                  height: image.height, seed: assignment.parameters.seed),
                            png: try image.pngData())
            rendered += 1
        } catch let error as RenderError {
            reply = .failed(.init(taskID: assignment.taskID, attempt: assignment.attempt, kind: error.kind,
                                  message: error.message))
        } catch {
            reply = .failed(.init(taskID: assignment.taskID, attempt: assignment.attempt, kind: .host,
                                  message: String(describing: error)))
        }
        unacknowledged[assignment.taskID] = reply
        _ = try? socket.send(reply.frames(), dontWait: true)
    }
}
