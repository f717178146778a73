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
///
/// The decisions are `WorkerState`'s; this class owns the socket and the render thread and
/// carries out what the state asks.
public final class WorkerDaemon {
    private let configuration: WorkerConfiguration
    private let renderer: Renderer
    private let context: ZMQContext
    private var socket: Socket
    /// The protocol's state: the welcome, the queue, what awaits acknowledgement.
    public private(set) var state: WorkerState
    /// The render running on its own thread, if any.
    private var current: RenderJob?
    /// Where it logs: events of tasks carry task, job, worker and attempt as metadata.
    public var logger = Logger(label: "farm.worker") {
        didSet { modelFetcher?.logger = logger }
    }
    private var metrics = WorkerMetrics()
    /// Tasks this worker has rendered.
    public private(set) var rendered = 0
    /// Set to stop taking tasks: the daemon finishes what it holds and `isDrained` turns true.
    public var draining: Bool {
        get { state.draining }
        set { state.draining = newValue }
    }
    /// Bytes of input images kept for later tasks.
    public var blobBudgetBytes: Int {
        get { state.blobBudgetBytes }
        set { state.blobBudgetBytes = newValue }
    }
    /// Set to abandon the task being rendered (it is reported as a host failure and requeued).
    public var cancelCurrent = false
    /// Asked between steps of a render: true abandons the task in hand (e.g. a second SIGTERM).
    public var cancelCheck: @Sendable () -> Bool = { false }
    /// Fetches the store models tasks name into the cache (nil without `configuration.modelSource`).
    public let modelFetcher: ModelFetcher?

    /// Connects the DEALER socket to the first endpoint (ZeroMQ reconnects by itself).
    public init(configuration: WorkerConfiguration, renderer: Renderer, context: ZMQContext) throws {
        self.configuration = configuration
        self.renderer = renderer
        self.context = context
        modelFetcher = try configuration.modelSource.map { try ModelFetcher(source: $0) }
        var device = WireMessage.Device.current
        // The BLAS core the engine runs (checked before the first product; see `BLASCore`).
        device.blasCore = BLASCore.status.core
        if let accelerator = renderer.accelerator {
            (device.accelerator, device.acceleratorMemoryBytes) = (accelerator.description, accelerator.memoryBytes)
        }
        state = WorkerState(
            configuration: configuration,
            introduction: .init(
                workerID: configuration.workerID, host: ProcessInfo.processInfo.hostName, models: renderer.models,
                slots: configuration.slots, maxPixels: configuration.maxPixels, device: device, vaes: renderer.vaes,
                loras: renderer.loras, tags: configuration.tags.isEmpty ? nil : configuration.tags),
            now: .now)
        if let modelFetcher {
            state.modelHashes = modelFetcher.heldHashes
            modelFetcher.logger = logger
            state.fetchesModels = true
        }
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
    public var isDrained: Bool { state.isDrained && current == nil }

    /// Works until `shouldStop` returns true; checks it at least every `tick` seconds.
    public func run(tick: Double = 0.2, shouldStop: () -> Bool) throws {
        logger.info("BLAS core: \(BLASCore.status.description)", metadata: ["blas_core": "\(BLASCore.status.core)"])
        while !shouldStop() {
            try runOnce(timeout: tick)
        }
    }

    /// Handles what arrives within `timeout` seconds, renders one queued task if any, and keeps the link alive.
    public func runOnce(timeout: Double) throws {
        // What the render thread fetched or evicted reaches the coordinator with the next heartbeat.
        if let modelFetcher { state.modelHashes = modelFetcher.heldHashes }
        try perform(state.tick(now: .now, loadedModel: renderer.loadedModel, modelLoadSeconds: renderer.lastModelLoadSeconds))
        var poller = Poller()
        poller.add(.socket(socket))
        if try poller.poll(timeout: current == nil && state.queue.isEmpty ? timeout : min(timeout, 0.02))[0] {
            while let frames = try socket.receive(dontWait: true) {
                try handle(frames)
            }
        }
        try perform(state.startNextRender())
        try collectRender()
        metrics.queued.record(state.queue.count)
        metrics.unacknowledged.record(state.unacknowledged.count)
    }

    /// Sends a message to the coordinator, counting it; a full queue drops it (everything that
    /// matters is resent until acknowledged).
    private func send(_ message: WireMessage) throws {
        try socket.send(message.frames(), dontWait: true)
        metrics.messages.count(message.typeName, received: false)
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
        try perform(state.received(message, now: .now))
    }

    /// Carries out what the state machine asked for.
    private func perform(_ actions: [WorkerAction]) throws {
        for action in actions {
            switch action {
            case .send(let message):
                try send(message)
            case .connect(let endpoint):
                socket = try WorkerDaemon.connect(configuration, endpoint: endpoint, context: context)
            case .startRender(let assignment, let inputs):
                startRender(assignment, inputs: inputs)
            case .cancelRender(let task):
                if current?.assignment.taskID == task { current?.cancel() }
            case .stop(let reason):
                throw WorkerError.refused(reason)
            case .log(let level, let message):
                logger.log(
                    level: level, "\(message)",
                    metadata: ["coordinator": "\(state.endpoint)", "worker": "\(configuration.workerID)"])
            case .connected(let connected):
                metrics.connected.record(connected ? 1 : 0)
            }
        }
    }

    /// Starts rendering the first queued task on its own thread. The daemon's loop keeps
    /// owning the socket: it sends what the render posts (progress, previews, the result)
    /// and keeps heartbeats going however long a step takes.
    private func startRender(_ assignment: WireMessage.Assignment, inputs: [String: Data]) {
        let job = RenderJob(assignment: assignment)
        current = job
        logger.info(
            "task \(assignment.taskID) rendering: \(assignment.parameters.width.map(String.init) ?? "native")×\(assignment.parameters.height.map(String.init) ?? "native"), \(assignment.parameters.steps) steps of \(assignment.parameters.model)",
            metadata: taskMetadata(assignment))
        let renderer = self.renderer
        let fetcher = modelFetcher
        let metadata = taskMetadata(assignment)
        let previewEvery = configuration.previewEvery
        let cancelCheck = self.cancelCheck
        Thread {
            let started = ContinuousClock.now
            var held: [String] = []
            defer { for hash in held { fetcher?.release(hash) } }
            let reply: WireMessage
            do {
                if let missing = assignment.parameters.inputHashes.first(where: { inputs[$0] == nil }) {
                    throw RenderError(kind: .host, message: "input image \(missing.prefix(12))… never arrived")
                }
                // Store models and add-ons come from the cache, fetched first if need be; without a model server the
                // names are looked up in the worker's folders, as before the store.
                if let fetcher { held = try fetcher.acquireFiles(of: assignment.parameters, for: renderer, metadata: metadata) }
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
                        let rate = Double(step) / max(started.duration(to: .now).seconds, 1e-6)
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
    private func collectRender() throws {
        guard let job = current else { return }
        if cancelCurrent { job.cancel() }
        let (messages, reply) = job.take()
        for message in messages {
            if case .progress(let report) = message, let speed = report.itemsPerSecond { metrics.stepsPerSecond.record(speed) }
            try? send(message)
        }
        guard let reply else { return }
        let seconds = job.started.duration(to: .now).seconds
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
        cancelCurrent = false
        try perform(state.renderFinished(reply, now: .now))
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
    let started = ContinuousClock.now
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
