import FarmModel
import Foundation
import JobStore
import Logging
import ZeroMQ

/// Settings of a coordinator daemon.
public struct CoordinatorConfiguration: Sendable {
    /// ZeroMQ endpoint workers connect to, e.g. `tcp://0.0.0.0:5555`.
    public var listen: String
    /// Seconds between heartbeats each way.
    public var heartbeatSeconds: Double = 1
    /// Heartbeats a worker may miss before it is declared lost and its tasks requeued.
    public var missedHeartbeats = 5
    /// How long a task's lease lasts without progress.
    public var leaseSeconds: Double = 60
    /// Seconds between batched progress writes to the database.
    public var progressFlushSeconds: Double = 1
    /// The farm's input limits.
    public var limits = Limits()
    /// The coordinator's CURVE secret key: links are encrypted and only workers whose public
    /// keys are on the allow-list (`worker_keys`) may connect. Nil: plain TCP (insecure).
    public var curveSecretKey: String?
    /// How long an allow-list answer is trusted before the database is asked again (revocations
    /// reach live connections within this time).
    public var keyCheckSeconds: Double = 10

    /// Silence after which a worker is lost.
    public var workerTimeoutSeconds: Double { heartbeatSeconds * Double(missedHeartbeats) }

    /// Settings with defaults for everything but the endpoint.
    public init(listen: String) {
        self.listen = listen
    }
}

/// What the coordinator knows of one connected worker.
struct ConnectedWorker {
    var routingID: Data
    var hello: WireMessage.Hello
    /// The CURVE key its connection authenticated with (nil on plain TCP).
    var publicKey: String?
    var lastSeen: Date
    var inFlight: Set<Int64> = []
    var loadedModel: String?
    var sentBlobs: Set<String> = []
    /// The operator's state from the database: online, draining or cordoned.
    var operatorState = "online"
    var toldToDrain = false

    var freeSlots: Int { operatorState == "online" ? max(0, hello.slots - inFlight.count) : 0 }
}

/// The coordinator daemon: accepts workers on a ROUTER socket, hands them queued tasks
/// from the job store (no more than each has announced room for), and stores what they
/// send back. PostgreSQL is the source of truth: if the database goes away the
/// coordinator stops dispatching, leaves results unacknowledged (workers resend them)
/// and reconnects; a restarted coordinator resumes from the database.
public final class CoordinatorServer {
    let configuration: CoordinatorConfiguration
    private let conninfo: String?
    private var store: JobStore?
    private var listener: WorkListener?
    private let socket: Socket
    private let zap: ZAPHandler?
    /// Allow-list answers per worker key, with when they were read.
    private var keyDecisions: [String: (allowed: Bool, checked: Date)] = [:]
    var workers: [Data: ConnectedWorker] = [:]
    var lastSweep = Date.distantPast
    private var lastReconnectAttempt = Date.distantPast
    private var reconnectDelay = 0.5
    var pendingProgress: [Int64: (report: WireMessage.Progress, workerID: String)] = [:]
    /// The latest preview of each running task (PNG), for watchers.
    public internal(set) var previews: [Int64: (step: Int, png: Data)] = [:]
    /// The last preview received from any worker (kept after its task ends).
    public private(set) var lastPreview: (taskID: Int64, step: Int, png: Data)?
    private var lastProgressFlush = Date()
    var workWaiting = true
    /// The job of each task handed out (or looked up), for events.
    private var taskJobs: [Int64: Int64] = [:]
    /// Live events for HTTP watchers: progress, previews, results and failures.
    public let events = FarmEvents()
    /// Where it logs: events of tasks carry task, job, worker and attempt as metadata.
    public var logger = Logger(label: "farm.coordinator")
    var metrics = CoordinatorMetrics()

    /// Binds the ROUTER socket and connects to the database (`conninfo` nil: the PG* variables).
    public init(configuration: CoordinatorConfiguration, conninfo: String?, context: ZMQContext) throws {
        self.configuration = configuration
        self.conninfo = conninfo
        // The ZAP handler must be bound before the first CURVE handshake can arrive.
        zap = configuration.curveSecretKey == nil ? nil : try ZAPHandler(context: context)
        socket = try Socket(context, .router)
        try socket.setMaxMessageSize(configuration.limits.maxMessageBytes)
        if let key = configuration.curveSecretKey { try socket.makeCurveServer(secretKey: key) }
        try socket.bind(configuration.listen)
        try connect()
    }

    /// The endpoint the socket is bound to (with the real port when `:*` was asked).
    public var endpoint: String { socket.lastEndpoint }

    /// Workers currently connected.
    public var connectedWorkers: Int { workers.count }

    /// True while the database is reachable.
    public var databaseConnected: Bool { store != nil }

    private func connect() throws {
        let store = try JobStore(conninfo: conninfo)
        // A cancel cut short (its client killed mid-way) left queued tasks in a cancelled job.
        if try store.finishInterruptedCancels() > 0 { logger.notice("finished cancelling jobs whose cancel was cut short") }
        self.store = store
        listener = try WorkListener(conninfo: conninfo)
        reconnectDelay = 0.5
        workWaiting = true
    }

    /// Runs `body` against the store; a database failure drops the connection (to be
    /// re-established) and returns nil.
    func withStore<T>(_ body: (JobStore) throws -> T) -> T? {
        guard let store else { return nil }
        do {
            return try body(store)
        } catch where JobStore.isConnectionFailure(error) {
            logger.error("database unavailable; will reconnect", metadata: ["error": "\(error)"])
            self.store = nil
            listener = nil
            return nil
        } catch {
            logger.error("database error", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Serves until `shouldStop` returns true; checks it at least every `tick` seconds.
    public func run(tick: Double = 0.2, shouldStop: () -> Bool) throws {
        while !shouldStop() {
            try runOnce(timeout: tick)
        }
    }

    /// Handles every message and notification that arrives within `timeout` seconds,
    /// then dispatches, flushes progress and sweeps.
    public func runOnce(timeout: Double) throws {
        if store == nil, Date().timeIntervalSince(lastReconnectAttempt) >= reconnectDelay {
            lastReconnectAttempt = Date()
            do {
                try connect()
                logger.notice("database reconnected")
            } catch {
                reconnectDelay = min(reconnectDelay * 2, 5)
            }
        }
        var poller = Poller()
        poller.add(.socket(socket))
        if let zap { poller.add(.socket(zap.socket)) }
        if let listener { poller.add(.fileDescriptor(listener.socket)) }
        let ready = try poller.poll(timeout: timeout)
        if let zap, ready[1] {
            for answer in try zap.answerPending(allow: { isKeyAllowed($0, fresh: true) }) where !answer.allowed {
                logger.warning("refused a worker connection: its key is not on the allow-list (farm keys allow)", metadata: ["key": "\(answer.publicKey)"])
            }
        }
        if ready[0] {
            while let (frames, userID) = try socket.receiveMessage(dontWait: true) {
                // A key revoked after its handshake: ignore the connection from then on.
                if zap != nil, !(userID.map { isKeyAllowed($0, fresh: false) } ?? false) { continue }
                handle(frames, publicKey: userID)
            }
        }
        if let listener, ready[ready.count - 1] {
            if (try? listener.drain()) == true { workWaiting = true }
        }
        dispatch()
        flushProgress(force: false)
        sweep()
    }

    /// Whether a worker key is on the allow-list: asks the database for handshakes (`fresh`) and
    /// otherwise when the last answer is older than `keyCheckSeconds`; no database means no.
    private func isKeyAllowed(_ key: String, fresh: Bool) -> Bool {
        if !fresh, let decision = keyDecisions[key], Date().timeIntervalSince(decision.checked) < configuration.keyCheckSeconds {
            return decision.allowed
        }
        guard let allowed = withStore({ try $0.isWorkerKeyAllowed(key) }) else { return keyDecisions[key]?.allowed ?? false }
        if !allowed && keyDecisions[key]?.allowed == true { logger.warning("worker key was revoked: ignoring its connection", metadata: ["key": "\(key)"]) }
        keyDecisions[key] = (allowed, Date())
        return allowed
    }

    private func handle(_ frames: [Data], publicKey: String?) {
        guard frames.count >= 2 else { return }
        let routingID = frames[0]
        let message: WireMessage
        do {
            message = try WireMessage(frames: Array(frames.dropFirst()), maxBytes: configuration.limits.maxMessageBytes)
        } catch {
            logger.warning("dropped a message", metadata: ["peer": "\(routingID.hexPrefix)", "error": "\(error)"])
            return
        }
        metrics.messages.count(message.typeName, received: true)
        handle(message, from: routingID, publicKey: publicKey)
    }

    func send(_ message: WireMessage, to routingID: Data) {
        do {
            try socket.send([routingID] + message.frames(), dontWait: true)
            metrics.messages.count(message.typeName, received: false)
        } catch {
            logger.warning("cannot send \(message.typeName)", metadata: ["peer": "\(routingID.hexPrefix)", "worker": "\(workers[routingID]?.hello.workerID ?? "?")", "error": "\(error)"])
        }
    }

    private func handle(_ message: WireMessage, from routingID: Data, publicKey: String?) {
        if case .hello(let hello) = message {
            guard hello.version == WireMessage.protocolVersion else {
                refuse(routingID, .protocolVersion,
                       "protocol version \(hello.version) is not supported; this coordinator speaks \(WireMessage.protocolVersion)",
                       worker: hello.workerID)
                return
            }
            if let problem = hello.problem(limits: configuration.limits) {
                refuse(routingID, .badHello, problem, worker: hello.workerID)
                return
            }
            // One live connection per name: another connection with it is refused while it still has its link
            // (a worker killed and started again has lost its old link, which then gives way).
            if let (otherID, _) = workers.first(where: { $0.key != routingID && $0.value.hello.workerID == hello.workerID }) {
                if (try? socket.routes(to: otherID, probe: WireMessage.heartbeat(.init(freeSlots: 0)).frames())) == true {
                    refuse(routingID, .nameInUse, "the name \(hello.workerID) is in use by a connected worker; start this one with another --name",
                           worker: hello.workerID)
                    return
                }
                workers[otherID] = nil
            }
            guard let registered = withStore({ try $0.registerWorker(hello, publicKey: publicKey) }) else { return }
            guard let operatorState = registered else {
                refuse(routingID, .nameBoundToOtherKey,
                       "the name \(hello.workerID) belongs to another worker key; start this one with another --name", worker: hello.workerID)
                return
            }
            var worker = ConnectedWorker(routingID: routingID, hello: hello, publicKey: publicKey, lastSeen: Date())
            worker.operatorState = operatorState
            worker.inFlight = Set(hello.activeTasks ?? [])
            workers[routingID] = worker
            workWaiting = true
            send(.welcome(.init(heartbeatSeconds: configuration.heartbeatSeconds,
                                timeoutSeconds: configuration.workerTimeoutSeconds)), to: routingID)
            let device = hello.device.map { " (\($0.summary))" } ?? ""
            logger.info("worker \(hello.workerID) on \(hello.host)\(device) joined with \(hello.slots) slot(s), holding \(worker.inFlight.count) task(s)",
                        metadata: ["worker": "\(hello.workerID)", "host": "\(hello.host)"])
            return
        }
        guard var worker = workers[routingID] else {
            // A worker we do not know (e.g. after a coordinator restart) must introduce itself again.
            send(.refused(.init(.unknownWorker, "unknown worker: send HELLO first")), to: routingID)
            return
        }
        worker.lastSeen = Date()
        defer { workers[routingID] = worker }
        switch message {
        case .heartbeat(let beat):
            worker.loadedModel = beat.loadedModel ?? worker.loadedModel
            if let seconds = beat.modelLoadSeconds { metrics.workerModelLoad(worker.hello.workerID, seconds: seconds) }
            _ = withStore { try $0.touchWorker(worker.hello.workerID, loadedModel: beat.loadedModel) }
            send(.heartbeat(.init(freeSlots: 0)), to: routingID)
        case .progress(let report):
            // Only the connection the task was handed to reports on it (the database checks the lease again).
            guard worker.inFlight.contains(report.taskID) else { return }
            pendingProgress[report.taskID] = (report, worker.hello.workerID)
            if let speed = report.itemsPerSecond { metrics.workerSpeed(worker.hello.workerID, stepsPerSecond: speed) }
            if let job = jobOf(report.taskID) {
                events.post(FarmEvent(name: "progress", job: job, payload: [
                    "task": report.taskID, "job": job, "attempt": report.attempt, "step": report.step,
                    "total": report.total, "worker": worker.hello.workerID]))
            }
        case .preview(let report, let png):
            guard worker.inFlight.contains(report.taskID), png.count <= configuration.limits.maxPreviewBytes else { return }
            previews[report.taskID] = (report.step, png)
            lastPreview = (report.taskID, report.step, png)
            if events.subscriberCount > 0, let job = jobOf(report.taskID) {
                events.post(FarmEvent(name: "preview", job: job, payload: [
                    "task": report.taskID, "job": job, "step": report.step, "png": png.base64EncodedString()]))
            }
        case .result(let header, let png):
            if let problem = resultProblem(header, png) {
                // Not stored: the attempt fails as a host error, so the task is handed out again.
                recordFailure(.init(taskID: header.taskID, attempt: header.attempt, kind: .host, message: "result rejected: \(problem)"),
                              of: &worker, routingID: routingID)
                return
            }
            guard let outcome = withStore({ try $0.complete(header, png: png, workerID: worker.hello.workerID) }) else { return }
            if case .rejected(let problem) = outcome {
                recordFailure(.init(taskID: header.taskID, attempt: header.attempt, kind: .host, message: "result rejected: \(problem)"),
                              of: &worker, routingID: routingID)
                return
            }
            if outcome == .stored { metrics.imageStored() }
            worker.inFlight.remove(header.taskID)
            pendingProgress[header.taskID] = nil
            previews[header.taskID] = nil
            workWaiting = true
            send(.ack(taskID: header.taskID, attempt: header.attempt), to: routingID)
            let job = jobOf(header.taskID)
            if let job {
                events.post(FarmEvent(name: "done", job: job, payload: [
                    "task": header.taskID, "job": job, "attempt": header.attempt, "seed": header.seed]))
            }
            taskJobs[header.taskID] = nil
            var metadata = Logger.Metadata.task(header.taskID, job: job, attempt: header.attempt, worker: worker.hello.workerID)
            metadata["outcome"] = "\(outcome)"
            logger.info("task \(header.taskID) attempt \(header.attempt) from \(worker.hello.workerID): \(outcome)", metadata: metadata)
        case .failed(let failure):
            recordFailure(failure, of: &worker, routingID: routingID)
        case .hello, .welcome, .refused, .assign, .ack, .cancel, .drain, .blob:
            logger.warning("ignored \(message.typeName) from a worker", metadata: ["worker": "\(worker.hello.workerID)"])
        }
    }

    /// The job of a task: from the dispatch map, else from the database (tasks held across a restart).
    func jobOf(_ task: Int64) -> Int64? {
        if let job = taskJobs[task] { return job }
        guard let found = withStore({ try $0.jobOfTask(task) }), let job = found else { return nil }
        taskJobs[task] = job
        return job
    }

    private func dispatch() {
        guard workWaiting else { return }
        var handedOut = false
        for (routingID, var worker) in workers where worker.freeSlots > 0 {
            let capabilities = WorkerCapabilities(models: worker.hello.models,
                                                  maxPixels: worker.hello.maxPixels ?? configuration.limits.maxPixels)
            guard let assignments = withStore({
                try $0.claimWithWaits(workerID: worker.hello.workerID, capabilities: capabilities, limit: worker.freeSlots,
                             leaseSeconds: configuration.leaseSeconds, preferredModel: worker.loadedModel)
            }) else { return }
            for (assignment, waited) in assignments {
                metrics.dispatchLatency.recordSeconds(waited)
                taskJobs[assignment.taskID] = assignment.jobID
                // Input images go once per worker, before the first task that needs them.
                for hash in assignment.parameters.inputHashes where !worker.sentBlobs.contains(hash) {
                    guard let found = withStore({ try $0.blob(hash) }), let data = found else { continue }
                    send(.blob(sha256: hash, data: data), to: routingID)
                    worker.sentBlobs.insert(hash)
                }
                send(.assign(assignment), to: routingID)
                worker.inFlight.insert(assignment.taskID)
                logger.debug("task \(assignment.taskID) assigned", metadata: .task(assignment.taskID, job: assignment.jobID, attempt: assignment.attempt,
                                                                                   worker: worker.hello.workerID))
                handedOut = true
            }
            workers[routingID] = worker
        }
        // Only a notification, a failure or a sweep brings new work once a pass found none.
        if !handedOut && workers.values.contains(where: { $0.freeSlots > 0 }) { workWaiting = false }
    }

    /// Writes the latest progress of each task in one statement per flush, not one write per step.
    private func flushProgress(force: Bool) {
        guard !pendingProgress.isEmpty, force || Date().timeIntervalSince(lastProgressFlush) >= configuration.progressFlushSeconds else { return }
        let reports = Array(pendingProgress.values)
        if withStore({ try $0.progress(batch: reports, leaseSeconds: configuration.leaseSeconds) }) != nil {
            pendingProgress.removeAll()
        }
        lastProgressFlush = Date()
    }
}

extension Data {
    var hexPrefix: String { prefix(8).map { String(format: "%02x", $0) }.joined() }
}
