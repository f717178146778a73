import FarmModel
import Foundation
import Logging

/// What the worker's state machine asks its daemon to do; the daemon owns the socket and the render thread.
public enum WorkerAction: Equatable {
    /// Send a message to the coordinator.
    case send(WireMessage)
    /// Drop the connection and connect to this endpoint (fail-over, or a fresh handshake with the same one).
    case connect(endpoint: String)
    /// Start rendering a task on the render thread, with the input images it needs that have arrived.
    case startRender(WireMessage.Assignment, inputs: [String: Data])
    /// Stop the render in hand at its next step (it is reported as failed).
    case cancelRender(taskID: Int64)
    /// The coordinator refused this worker for good: stop with this reason.
    case stop(String)
    /// Write a log line.
    case log(Logger.Level, String)
    /// Whether a coordinator has welcomed this worker (for the connected gauge).
    case connected(Bool)
}

/// The worker's protocol logic as a value: each method takes one event (a message, a tick with the time from the
/// monotonic clock, a finished render) and returns what to do. Introductions back off and fail over to the next
/// coordinator when unanswered; results and failures are resent until acknowledged; a drained worker takes no more.
public struct WorkerState {
    /// The settings it runs with.
    public let configuration: WorkerConfiguration
    /// What it says of itself in HELLO (its held tasks are filled in when sent).
    public let introduction: WireMessage.Hello
    /// The endpoint in use, as an index into `configuration.coordinators`.
    public private(set) var endpointIndex = 0
    /// The current coordinator's welcome, nil until it has answered.
    public private(set) var welcomed: WireMessage.Welcome?
    /// Tasks assigned and not yet rendered; the first is the one rendering when `rendering` is set.
    public private(set) var queue: [WireMessage.Assignment] = []
    /// The task on the render thread.
    public private(set) var rendering: Int64?
    /// Results and failures sent but not yet acknowledged, resent until they are.
    public private(set) var unacknowledged: [Int64: WireMessage] = [:]
    /// Input images received, by SHA-256; the oldest go when they exceed `blobBudgetBytes`.
    var blobs: [(hash: String, data: Data)] = []
    /// Bytes of input images kept for later tasks.
    public var blobBudgetBytes = 512 << 20
    /// Set to stop taking tasks: the worker finishes what it holds and `isDrained` turns true.
    public var draining = false
    /// SHA-256s of the store models in its cache now (nil: it has no cache), sent with HELLO and every heartbeat.
    public var modelHashes: [String]?
    /// True when it fetches store models it lacks (it has a model server), said in HELLO.
    public var fetchesModels = false
    var lastHeartbeatSent: Instant?
    var lastHeard: Instant
    var lastHelloSent: Instant?
    var helloInterval: Double
    /// When the first introduction the current coordinator has not answered was sent.
    var unansweredSince: Instant?
    var lastResend: Instant

    /// A worker that has not introduced itself yet.
    public init(configuration: WorkerConfiguration, introduction: WireMessage.Hello, now: Instant) {
        self.configuration = configuration
        self.introduction = introduction
        helloInterval = configuration.reconnectBackoff.first
        lastHeard = now
        lastResend = now
    }

    /// True when draining and nothing is left to render or to hand in.
    public var isDrained: Bool { draining && rendering == nil && queue.isEmpty && unacknowledged.isEmpty }

    /// Tasks it has room for.
    public var freeSlots: Int { draining ? 0 : max(0, configuration.slots - queue.count) }

    var endpoint: String { configuration.coordinators[endpointIndex] }

    /// The introduction with the tasks it holds, so a new coordinator does not hand them out again.
    var hello: WireMessage {
        var hello = introduction
        hello.modelHashes = modelHashes ?? introduction.modelHashes
        if fetchesModels { hello.fetchesModels = true }
        hello.activeTasks = queue.map(\.taskID) + unacknowledged.keys.sorted()
        return .hello(hello)
    }

    /// The periodic pass: introductions while unwelcomed, heartbeats, silence and resends.
    /// `loadedModel` and `modelLoadSeconds` go into the heartbeat.
    public mutating func tick(now: Instant, loadedModel: String? = nil, modelLoadSeconds: Double? = nil) -> [WorkerAction] {
        var actions: [WorkerAction] = []
        if welcomed == nil, lastHelloSent.map({ now.seconds(since: $0) >= helloInterval }) ?? true {
            // Back off while nobody answers; fail over to the next endpoint when this one has been silent long
            // enough (a worker that starts while its first coordinator is down must not wait out the whole backoff).
            // With one endpoint that is a fresh connection to it: libzmq does not retry a CURVE handshake the
            // coordinator refused, so a key allowed after the worker's first try would otherwise never get in.
            if let since = unansweredSince, now.seconds(since: since) >= configuration.failOverSeconds {
                failOver(reason: "no answer", into: &actions)
            }
            actions.append(.send(hello))
            lastHelloSent = now
            if unansweredSince == nil { unansweredSince = now }
            helloInterval = min(helloInterval * 2, configuration.reconnectBackoff.max)
        }
        if let welcome = welcomed {
            if lastHeartbeatSent.map({ now.seconds(since: $0) >= welcome.heartbeatSeconds }) ?? true {
                let state = draining ? "draining" : queue.isEmpty ? "idle" : "busy"
                actions.append(
                    .send(
                        .heartbeat(
                            .init(
                                freeSlots: freeSlots, state: state, loadedModel: loadedModel, modelLoadSeconds: modelLoadSeconds,
                                modelHashes: modelHashes))))
                lastHeartbeatSent = now
            }
            if now.seconds(since: lastHeard) > welcome.timeoutSeconds {
                actions.append(.log(.warning, "coordinator \(endpoint) silent for \(Int(welcome.timeoutSeconds)) s; introducing myself again"))
                welcomed = nil
                actions.append(.connected(false))
                helloInterval = configuration.reconnectBackoff.first
                lastHeard = now
                if configuration.coordinators.count > 1 { failOver(reason: "silent", into: &actions) }
            }
        }
        if now.seconds(since: lastResend) >= configuration.resendSeconds {
            actions += unacknowledged.keys.sorted().compactMap { unacknowledged[$0].map(WorkerAction.send) }
            lastResend = now
        }
        return actions
    }

    /// Starts the first queued task when no render is running, with the input images it needs that have arrived.
    public mutating func startNextRender() -> [WorkerAction] {
        guard rendering == nil, let next = queue.first else { return [] }
        rendering = next.taskID
        var inputs: [String: Data] = [:]
        for hash in next.parameters.inputHashes {
            if let blob = blobs.last(where: { $0.hash == hash }) { inputs[hash] = blob.data }
        }
        return [.startRender(next, inputs: inputs)]
    }

    mutating func failOver(reason: String, into actions: inout [WorkerAction]) {
        endpointIndex = (endpointIndex + 1) % configuration.coordinators.count
        let verb = configuration.coordinators.count > 1 ? "failing over to" : "connecting again to"
        actions.append(.log(.warning, "coordinator \(reason); \(verb) \(endpoint)"))
        actions.append(.connect(endpoint: endpoint))
        helloInterval = configuration.reconnectBackoff.first
        unansweredSince = nil
    }

    /// A message from the coordinator.
    public mutating func received(_ message: WireMessage, now: Instant) -> [WorkerAction] {
        lastHeard = now
        var actions: [WorkerAction] = []
        switch message {
        case .welcome(let welcome):
            if welcomed == nil {
                actions.append(.log(.info, "joined coordinator \(endpoint) as \(configuration.workerID)"))
                actions.append(.connected(true))
            }
            welcomed = welcome
            unansweredSince = nil
            helloInterval = configuration.reconnectBackoff.first
            actions += unacknowledged.keys.sorted().compactMap { unacknowledged[$0].map(WorkerAction.send) }
        case .refused(let refusal):
            // A coordinator that restarted does not know this connection: introduce itself again at once.
            if refusal.code == .unknownWorker {
                welcomed = nil
                lastHelloSent = nil
            } else {
                actions.append(.stop(refusal.reason))
            }
        case .assign(let assignment):
            if draining {
                let refusal = WireMessage.failed(
                    .init(
                        taskID: assignment.taskID, attempt: assignment.attempt, kind: .host,
                        message: "worker \(configuration.workerID) is draining"))
                unacknowledged[assignment.taskID] = refusal
                actions.append(.send(refusal))
            } else if !queue.contains(where: { $0.taskID == assignment.taskID }) {
                queue.append(assignment)
            }
        case .cancel(let taskID):
            // The task being rendered stops at its next step; queued ones are dropped now.
            if rendering == taskID {
                actions.append(.cancelRender(taskID: taskID))
            } else {
                queue.removeAll { $0.taskID == taskID }
            }
        case .drain:
            draining = true
        case .blob(let hash, let data):
            blobs.removeAll { $0.hash == hash }
            blobs.append((hash, data))
            while blobs.count > 1 && blobs.reduce(0, { $0 + $1.data.count }) > blobBudgetBytes { blobs.removeFirst() }
        case .ack(let taskID, _):
            unacknowledged[taskID] = nil
        case .heartbeat:
            break
        case .hello, .progress, .result, .failed, .preview:
            actions.append(.log(.warning, "ignored \(message.typeName) from the coordinator"))
        }
        return actions
    }

    /// The render in hand has finished with a result or a failure: it is sent, and kept until acknowledged.
    public mutating func renderFinished(_ reply: WireMessage, now: Instant) -> [WorkerAction] {
        guard let task = rendering else { return [] }
        rendering = nil
        queue.removeAll { $0.taskID == task }
        unacknowledged[task] = reply
        return [.send(reply)]
    }
}
