// Module Coordinator: the coordinator daemon: its loop over the workers' socket and its database lane. Imports
// JobStore, ZeroMQ, FarmModel and Imaging.

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
///
/// The loop here owns the sockets and answers heartbeats; every statement runs on the
/// `DatabaseLane`'s thread and comes back as an answer, so the database never holds it up.
public final class CoordinatorServer {
    let configuration: CoordinatorConfiguration
    let database: DatabaseLane
    var listener: WorkListener?
    let socket: Socket
    let zap: ZAPHandler?
    /// The handshake whose key the database is being asked about (the ZAP socket answers one at a time).
    var pendingHandshake: ZAPRequest?
    /// Allow-list answers per worker key, with when they were read.
    var keyDecisions: [String: (allowed: Bool, checked: Date)] = [:]
    /// Keys whose allow-list answer is being read again.
    var keyChecks: Set<String> = []
    var workers: [Data: ConnectedWorker] = [:]
    /// Connections whose HELLO is being registered, with the names they gave.
    var registering: [Data: String] = [:]
    /// Workers whose heartbeat is being written.
    var touching: Set<String> = []
    /// Tasks whose result or failure is being stored (a resend meanwhile is dropped; the worker resends again).
    var reporting: Set<Int64> = []
    /// Claims asked for and not answered; the next pass waits for them.
    var claimsInFlight = 0
    var sweepInFlight = false
    var flushInFlight = false
    /// Tasks whose first progress is not yet written: written at the next pass, not the next flush, so that a
    /// task shows as started at once whatever the flush period.
    var progressStarted: Set<Int64> = []
    /// Tasks whose progress has been written at least once.
    var progressWritten: Set<Int64> = []
    var everConnected = false
    var lastSweep = Date.distantPast
    var pendingProgress: [Int64: (report: WireMessage.Progress, workerID: String)] = [:]
    /// The latest preview of each running task (PNG), for watchers.
    public internal(set) var previews: [Int64: (step: Int, png: Data)] = [:]
    /// The last preview received from any worker (kept after its task ends).
    public internal(set) var lastPreview: (taskID: Int64, step: Int, png: Data)?
    var lastProgressFlush = Date()
    var workWaiting = true
    /// The job of each task handed out (or looked up), for events.
    var taskJobs: [Int64: Int64] = [:]
    /// Live events for HTTP watchers: progress, previews, results and failures.
    public let events = FarmEvents()
    /// Where it logs: events of tasks carry task, job, worker and attempt as metadata.
    public var logger = Logger(label: "farm.coordinator")
    var metrics = CoordinatorMetrics()

    /// Binds the ROUTER socket and starts the database lane (`conninfo` nil: the PG* variables), which
    /// connects with the first piece of work and again whenever the connection is lost.
    public init(configuration: CoordinatorConfiguration, conninfo: String?, context: ZMQContext) throws {
        self.configuration = configuration
        // The ZAP handler must be bound before the first CURVE handshake can arrive.
        zap = configuration.curveSecretKey == nil ? nil : try ZAPHandler(context: context)
        socket = try Socket(context, .router)
        try socket.setMaxMessageSize(configuration.limits.maxMessageBytes)
        if let key = configuration.curveSecretKey { try socket.makeCurveServer(secretKey: key) }
        try socket.bind(configuration.listen)
        weak var server: CoordinatorServer?
        database = try DatabaseLane(conninfo: conninfo) { server?.databaseNotice($0) }
        server = self
    }

    deinit {
        database.stop()
    }

    /// The endpoint the socket is bound to (with the real port when `:*` was asked).
    public var endpoint: String { socket.lastEndpoint }

    /// Workers currently connected.
    public var connectedWorkers: Int { workers.count }

    /// True while the database is reachable.
    public var databaseConnected: Bool { database.connected }

    private func databaseNotice(_ notice: DatabaseLane.Notice) {
        switch notice {
        case .connected(let listener, let finishedCancels):
            self.listener = listener
            workWaiting = true
            if everConnected { logger.notice("database reconnected") }
            everConnected = true
            if finishedCancels > 0 {
                logger.notice("finished cancelling \(finishedCancels) task(s) of jobs whose cancel was cut short")
            }
        case .unavailable(let error):
            listener = nil
            logger.error("database unavailable; will reconnect", metadata: ["error": "\(error)"])
        case .failed(let error):
            logger.error("database error", metadata: ["error": "\(error)"])
        }
    }

    /// Serves until `shouldStop` returns true; checks it at least every `tick` seconds.
    public func run(tick: Double = 0.2, shouldStop: () -> Bool) throws {
        while !shouldStop() {
            try runOnce(timeout: tick)
        }
    }

    /// Handles every message, database answer and notification that arrives within `timeout` seconds,
    /// then dispatches, flushes progress and sweeps.
    public func runOnce(timeout: Double) throws {
        var poller = Poller()
        poller.add(.socket(socket))
        poller.add(.fileDescriptor(database.wakeDescriptor))
        var next = 2
        let zapIndex: Int? = zap != nil && pendingHandshake == nil ? next : nil
        if let zap, zapIndex != nil {
            poller.add(.socket(zap.socket))
            next += 1
        }
        let listenerIndex: Int? = listener == nil ? nil : next
        if let listener { poller.add(.fileDescriptor(listener.socket)) }
        let ready = try poller.poll(timeout: timeout)
        if ready[1] { database.deliver() }
        if let zapIndex, ready[zapIndex] { try checkHandshake() }
        if ready[0] {
            while let (frames, userID) = try socket.receiveMessage(dontWait: true) {
                // A key revoked after its handshake: ignore the connection from then on.
                if zap != nil, !(userID.map { isKeyAllowed($0) } ?? false) { continue }
                handle(frames, publicKey: userID)
            }
        }
        if let listener, let listenerIndex, ready[listenerIndex] {
            if (try? listener.drain()) == true { workWaiting = true }
        }
        dispatch()
        flushProgress(force: false)
        sweep()
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
            logger.warning(
                "cannot send \(message.typeName)",
                metadata: ["peer": "\(routingID.hexPrefix)", "worker": "\(workers[routingID]?.hello.workerID ?? "?")", "error": "\(error)"])
        }
    }

    private func handle(_ message: WireMessage, from routingID: Data, publicKey: String?) {
        if case .hello(let hello) = message {
            handleHello(hello, from: routingID, publicKey: publicKey)
            return
        }
        guard var worker = workers[routingID] else {
            // Its HELLO is being registered: what it sends meanwhile is resent until acknowledged.
            if registering[routingID] != nil { return }
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
            send(.heartbeat(.init(freeSlots: 0)), to: routingID)
            touch(worker.hello.workerID, loadedModel: beat.loadedModel)
        case .progress(let report):
            // Only the connection the task was handed to reports on it (the database checks the lease again).
            guard worker.inFlight.contains(report.taskID) else { return }
            pendingProgress[report.taskID] = (report, worker.hello.workerID)
            if !progressWritten.contains(report.taskID) { progressStarted.insert(report.taskID) }
            if let speed = report.itemsPerSecond { metrics.workerSpeed(worker.hello.workerID, stepsPerSecond: speed) }
            let (workerID, events) = (worker.hello.workerID, events)
            withJob(of: report.taskID) { job in
                events.post(
                    FarmEvent(
                        name: "progress", job: job,
                        payload: [
                            "task": report.taskID, "job": job, "attempt": report.attempt, "step": report.step,
                            "total": report.total, "worker": workerID,
                        ]))
            }
        case .preview(let report, let png):
            guard worker.inFlight.contains(report.taskID), png.count <= configuration.limits.maxPreviewBytes else { return }
            previews[report.taskID] = (report.step, png)
            lastPreview = (report.taskID, report.step, png)
            if events.subscriberCount > 0 {
                withJob(of: report.taskID) { [events] job in
                    events.post(
                        FarmEvent(
                            name: "preview", job: job,
                            payload: [
                                "task": report.taskID, "job": job, "step": report.step, "png": png.base64EncodedString(),
                            ]))
                }
            }
        case .result(let header, let png):
            storeResult(header, png, from: worker, routingID: routingID)
        case .failed(let failure):
            recordFailure(failure, workerID: worker.hello.workerID, routingID: routingID)
        case .hello, .welcome, .refused, .assign, .ack, .cancel, .drain, .blob:
            logger.warning("ignored \(message.typeName) from a worker", metadata: ["worker": "\(worker.hello.workerID)"])
        }
    }

    /// Runs `body` with the job of a task: from the dispatch map, else (tasks held across a restart) once the
    /// database has said; not at all for a task it does not know.
    func withJob(of task: Int64, _ body: @escaping (Int64) -> Void) {
        if let job = taskJobs[task] {
            body(job)
            return
        }
        database.run(
            { try $0.jobOfTask(task) },
            then: { [weak self] found in
                guard let self, let found, let job = found else { return }
                self.taskJobs[task] = job
                body(job)
            })
    }
}

extension Data {
    var hexPrefix: String { prefix(8).map { String(format: "%02x", $0) }.joined() }
}
