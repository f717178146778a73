// Module Worker: the worker daemon and its renderers. Imports StableDiffusion, Tensors, Imaging, ZeroMQ and FarmModel.

import FarmModel
import Foundation
import Imaging
import Logging
import Tensors
import ZeroMQ

/// The worker daemon: introduces itself on a DEALER socket, renders what it is assigned,
/// streams progress, and resends each result until it is acknowledged, across coordinator
/// restarts and fail-overs. Draining finishes the work in hand and takes no more.
public final class WorkerDaemon {
    private let configuration: WorkerConfiguration
    private let renderer: Renderer
    private let context: ZMQContext
    private var socket: Socket
    private var endpointIndex = 0
    private var welcomed: WireMessage.Welcome?
    private var queue: [WireMessage.Assignment] = []
    /// Results and failures sent but not yet acknowledged, resent until they are.
    private var unacknowledged: [Int64: WireMessage] = [:]
    private var cancelled: Set<Int64> = []
    /// The render running on its own thread, if any.
    private var current: RenderJob?
    /// Input images received, by SHA-256; the oldest go when they exceed `blobBudgetBytes`.
    private var blobs: [(hash: String, data: Data)] = []
    /// Bytes of input images kept for later tasks.
    public var blobBudgetBytes = 512 << 20
    private var lastHeartbeatSent = Date.distantPast
    private var lastHeard = Date()
    private var lastHelloSent = Date.distantPast
    private var helloInterval: Double
    /// When the first introduction the current coordinator has not answered was sent.
    private var unansweredSince: Date?
    private var lastResend = Date()
    /// Where it logs: events of tasks carry task, job, worker and attempt as metadata.
    public var logger = Logger(label: "farm.worker")
    private var metrics = WorkerMetrics()
    /// Tasks this worker has rendered.
    public private(set) var rendered = 0
    /// Set to stop taking tasks: the daemon finishes what it holds and `isDrained` turns true.
    public var draining = false
    /// Set to abandon the task being rendered (it is reported as a host failure and requeued).
    public var cancelCurrent = false
    /// Asked between steps of a render: true abandons the task in hand (e.g. a second SIGTERM).
    public var cancelCheck: () -> Bool = { false }

    /// Connects the DEALER socket to the first endpoint (ZeroMQ reconnects by itself).
    public init(configuration: WorkerConfiguration, renderer: Renderer, context: ZMQContext) throws {
        self.configuration = configuration
        self.renderer = renderer
        self.context = context
        helloInterval = configuration.reconnectBackoff.first
        socket = try WorkerDaemon.connect(configuration, endpoint: configuration.coordinators[0], context: context)
    }

    private static func connect(_ configuration: WorkerConfiguration, endpoint: String, context: ZMQContext) throws -> Socket {
        let socket = try Socket(context, .dealer)
        // A routing id of its own per connection: two processes given one name must both reach the coordinator,
        // which refuses the second by name (ZeroMQ would drop a second connection with the same id unanswered).
        try socket.setIdentity("\(configuration.workerID)#\(String(UInt32.random(in: 0 ... .max), radix: 16))")
        try socket.setMaxMessageSize(configuration.maxMessageBytes)
        try socket.setReconnectInterval(first: configuration.reconnectBackoff.first, max: configuration.reconnectBackoff.max)
        if let curve = configuration.curve { try socket.makeCurveClient(serverKey: curve.serverKey, keys: curve.keys) }
        try socket.connect(endpoint)
        return socket
    }

    /// True when draining and nothing is left to render or to hand in.
    public var isDrained: Bool { draining && current == nil && queue.isEmpty && unacknowledged.isEmpty }

    private var freeSlots: Int { draining ? 0 : max(0, configuration.slots - queue.count) }

    /// This machine, with the BLAS core the engine runs (checked before the first product; see `BLASCore`).
    private var device: WireMessage.Device {
        var device = WireMessage.Device.current
        device.blasCore = BLASCore.status.core
        return device
    }

    private var hello: WireMessage {
        .hello(
            .init(
                workerID: configuration.workerID, host: ProcessInfo.processInfo.hostName,
                models: renderer.models, slots: configuration.slots,
                activeTasks: queue.map(\.taskID) + unacknowledged.keys.sorted(), device: device))
    }

    /// Works until `shouldStop` returns true; checks it at least every `tick` seconds.
    public func run(tick: Double = 0.2, shouldStop: () -> Bool) throws {
        logger.info("BLAS core: \(BLASCore.status.description)", metadata: ["blas_core": "\(BLASCore.status.core)"])
        while !shouldStop() {
            try runOnce(timeout: tick)
        }
    }

    /// Handles what arrives within `timeout` seconds, renders one queued task if any, and keeps the link alive.
    public func runOnce(timeout: Double) throws {
        let now = Date()
        if welcomed == nil, now.timeIntervalSince(lastHelloSent) >= helloInterval {
            // Back off while nobody answers; fail over to the next endpoint when this one has been
            // silent long enough (a worker that starts while its first coordinator is down must
            // not wait out the whole backoff). With one endpoint that is a fresh connection to it: libzmq
            // does not retry a CURVE handshake the coordinator refused, so a key allowed after the
            // worker's first try would otherwise never get in.
            if let since = unansweredSince, now.timeIntervalSince(since) >= configuration.failOverSeconds {
                try failOver(reason: "no answer")
            }
            try send(hello)
            lastHelloSent = now
            if unansweredSince == nil { unansweredSince = now }
            helloInterval = min(helloInterval * 2, configuration.reconnectBackoff.max)
        }
        var poller = Poller()
        poller.add(.socket(socket))
        if try poller.poll(timeout: current == nil && queue.isEmpty ? timeout : min(timeout, 0.02))[0] {
            while let frames = try socket.receive(dontWait: true) {
                try handle(frames)
            }
        }
        if let welcome = welcomed {
            if now.timeIntervalSince(lastHeartbeatSent) >= welcome.heartbeatSeconds {
                let state = draining ? "draining" : queue.isEmpty ? "idle" : "busy"
                try send(
                    .heartbeat(
                        .init(
                            freeSlots: freeSlots, state: state, loadedModel: renderer.loadedModel,
                            modelLoadSeconds: renderer.lastModelLoadSeconds)))
                lastHeartbeatSent = now
            }
            if now.timeIntervalSince(lastHeard) > welcome.timeoutSeconds {
                logger.warning(
                    "coordinator silent for \(Int(welcome.timeoutSeconds)) s; introducing myself again",
                    metadata: ["coordinator": "\(configuration.coordinators[endpointIndex])"])
                welcomed = nil
                metrics.connected.record(0)
                helloInterval = configuration.reconnectBackoff.first
                lastHeard = now
                if configuration.coordinators.count > 1 { try failOver(reason: "silent") }
            }
        }
        if now.timeIntervalSince(lastResend) >= configuration.resendSeconds {
            for pending in unacknowledged.values { try send(pending) }
            lastResend = now
        }
        if current == nil && !queue.isEmpty { startRender() }
        collectRender()
        metrics.queued.record(queue.count)
        metrics.unacknowledged.record(unacknowledged.count)
    }

    /// Sends a message to the coordinator, counting it; a full queue drops it (everything that
    /// matters is resent until acknowledged).
    private func send(_ message: WireMessage) throws {
        try socket.send(message.frames(), dontWait: true)
        metrics.messages.count(message.typeName, received: false)
    }

    private func failOver(reason: String) throws {
        endpointIndex = (endpointIndex + 1) % configuration.coordinators.count
        let endpoint = configuration.coordinators[endpointIndex]
        let action = configuration.coordinators.count > 1 ? "failing over to" : "connecting again to"
        logger.warning("coordinator \(reason); \(action) \(endpoint)", metadata: ["coordinator": "\(endpoint)"])
        socket = try WorkerDaemon.connect(configuration, endpoint: endpoint, context: context)
        helloInterval = configuration.reconnectBackoff.first
        unansweredSince = nil
    }

    private func handle(_ frames: [Data]) throws {
        let message: WireMessage
        do {
            message = try WireMessage(frames: frames, maxBytes: configuration.maxMessageBytes)
        } catch {
            logger.warning("dropped a message from the coordinator", metadata: ["error": "\(error)"])
            return
        }
        metrics.messages.count(message.typeName, received: true)
        lastHeard = Date()
        switch message {
        case .welcome(let welcome):
            if welcomed == nil {
                logger.info(
                    "joined coordinator \(configuration.coordinators[endpointIndex]) as \(configuration.workerID)",
                    metadata: ["coordinator": "\(configuration.coordinators[endpointIndex])", "worker": "\(configuration.workerID)"])
            }
            welcomed = welcome
            unansweredSince = nil
            metrics.connected.record(1)
            helloInterval = configuration.reconnectBackoff.first
            for pending in unacknowledged.values { try send(pending) }
        case .refused(let refusal):
            if refusal.code == .unknownWorker {
                welcomed = nil
            } else {
                throw WorkerError.refused(refusal.reason)
            }
        case .assign(let assignment):
            if draining {
                let refusal = WireMessage.failed(
                    .init(
                        taskID: assignment.taskID, attempt: assignment.attempt, kind: .host,
                        message: "worker \(configuration.workerID) is draining"))
                unacknowledged[assignment.taskID] = refusal
                try send(refusal)
            } else if !queue.contains(where: { $0.taskID == assignment.taskID }) {
                queue.append(assignment)
            }
        case .cancel(let taskID):
            // The task being rendered (the queue's first) stops at its next step; queued ones are dropped now.
            let current = queue.first?.taskID
            queue.removeAll { $0.taskID == taskID && $0.taskID != current }
            cancelled.insert(taskID)
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
            logger.warning("ignored \(message.typeName) from the coordinator")
        }
    }

    /// Starts rendering the first queued task on its own thread. The daemon's loop keeps
    /// owning the socket: it sends what the render posts (progress, previews, the result)
    /// and keeps heartbeats going however long a step takes.
    private func startRender() {
        let assignment = queue[0]
        var found: [String: Data] = [:]
        for hash in assignment.parameters.inputHashes {
            if let blob = blobs.last(where: { $0.hash == hash }) { found[hash] = blob.data }
        }
        let inputs = found
        let job = RenderJob(assignment: assignment)
        current = job
        logger.info(
            "task \(assignment.taskID) rendering: \(assignment.parameters.width.map(String.init) ?? "native")×\(assignment.parameters.height.map(String.init) ?? "native"), \(assignment.parameters.steps) steps of \(assignment.parameters.model)",
            metadata: taskMetadata(assignment))
        let renderer = self.renderer
        let previewEvery = configuration.previewEvery
        let cancelCheck = self.cancelCheck
        Thread {
            let started = Date()
            let reply: WireMessage
            do {
                if let missing = assignment.parameters.inputHashes.first(where: { inputs[$0] == nil }) {
                    throw RenderError(kind: .host, message: "input image \(missing.prefix(12))… never arrived")
                }
                let image = try renderer.render(
                    assignment.parameters, inputs: inputs, previewEvery: previewEvery,
                    preview: { step, image in
                        guard let png = try? image.pngData(), png.count <= Limits().maxPreviewBytes else { return }
                        let report = WireMessage.Progress(
                            taskID: assignment.taskID, attempt: assignment.attempt, step: step,
                            total: assignment.parameters.steps)
                        job.post(.preview(report, png: png))
                    },
                    progress: { step, total in
                        let rate = Double(step) / max(Date().timeIntervalSince(started), 1e-6)
                        job.post(
                            .progress(
                                .init(
                                    taskID: assignment.taskID, attempt: assignment.attempt, step: step, total: total,
                                    itemsPerSecond: rate)))
                        if cancelCheck() { job.cancel() }
                        return !job.isCancelled
                    })
                reply = .result(
                    .init(
                        taskID: assignment.taskID, attempt: assignment.attempt, width: image.width,
                        height: image.height, seed: assignment.parameters.seed),
                    png: try image.pngData())
            } catch let error as RenderError {
                reply = .failed(.init(taskID: assignment.taskID, attempt: assignment.attempt, kind: error.kind, message: error.message))
            } catch {
                reply = .failed(
                    .init(
                        taskID: assignment.taskID, attempt: assignment.attempt, kind: .host,
                        message: String(describing: error)))
            }
            job.finish(reply)
        }.start()
    }

    /// Sends what the render thread posted and, when it has finished, hands in its reply.
    private func collectRender() {
        guard let job = current else { return }
        if cancelCurrent || cancelled.contains(job.assignment.taskID) { job.cancel() }
        let (messages, reply) = job.take()
        for message in messages {
            if case .progress(let report) = message, let speed = report.itemsPerSecond { metrics.stepsPerSecond.record(speed) }
            try? send(message)
        }
        guard let reply else { return }
        let seconds = Date().timeIntervalSince(job.started)
        metrics.renderTime.recordSeconds(seconds)
        if let load = renderer.lastModelLoadSeconds { metrics.modelLoad.record(load) }
        var metadata = taskMetadata(job.assignment)
        metadata["seconds"] = .stringConvertible((seconds * 1000).rounded() / 1000)
        switch reply {
        case .result:
            rendered += 1
            metrics.finished("done")
            logger.info("task \(job.assignment.taskID) rendered in \(String(format: "%.2f", seconds)) s", metadata: metadata)
        case .failed(let failure):
            metrics.finished(job.isCancelled ? "cancelled" : "failed")
            metadata["kind"] = "\(failure.kind)"
            logger.warning("task \(job.assignment.taskID) failed (\(failure.kind)): \(failure.message)", metadata: metadata)
        default:
            break
        }
        current = nil
        queue.removeFirst()
        cancelCurrent = false
        cancelled.remove(job.assignment.taskID)
        unacknowledged[job.assignment.taskID] = reply
        try? send(reply)
    }

    /// The log metadata of an assigned task.
    private func taskMetadata(_ assignment: WireMessage.Assignment) -> Logger.Metadata {
        .task(assignment.taskID, job: assignment.jobID, attempt: assignment.attempt, worker: configuration.workerID)
    }
}

/// One render in flight: what its thread posts for the daemon's loop to send, and its cancel flag.
final class RenderJob: @unchecked Sendable {
    let assignment: WireMessage.Assignment
    /// When the render began.
    let started = Date()
    private let lock = NSLock()
    private var outbox: [WireMessage] = []
    private var reply: WireMessage?
    private var cancelled = false

    init(assignment: WireMessage.Assignment) {
        self.assignment = assignment
    }

    func post(_ message: WireMessage) { lock.withLock { outbox.append(message) } }

    func finish(_ message: WireMessage) { lock.withLock { reply = message } }

    func cancel() { lock.withLock { cancelled = true } }

    var isCancelled: Bool { lock.withLock { cancelled } }

    /// The posted messages (emptied) and the reply, once the render has finished.
    func take() -> ([WireMessage], WireMessage?) {
        lock.withLock {
            defer { outbox.removeAll() }
            return (outbox, reply)
        }
    }
}
