import FarmModel
import Foundation
import JobStore
import Logging

/// What the coordinator knows of one connected worker.
public struct ConnectedWorker {
    /// Its connection.
    public var routingID: Data
    /// What it said when it joined.
    public var hello: WireMessage.Hello
    /// The CURVE key its connection authenticated with (nil on plain TCP).
    public var publicKey: String?
    /// When it was last heard from.
    public var lastSeen: Instant
    /// Tasks handed to it and not yet reported.
    public var inFlight: Set<Int64> = []
    /// The model it said it has loaded.
    public var loadedModel: String?
    /// Input images it has been sent.
    public var sentBlobs: Set<String> = []
    /// The operator's state from the database: online, draining or cordoned.
    public var operatorState = WorkerStatus.online
    /// Whether it has been sent DRAIN since it was last online.
    public var toldToDrain = false

    /// Tasks it may be given now: none unless it is online.
    public var freeSlots: Int { operatorState == .online ? max(0, hello.slots - inFlight.count) : 0 }

    /// The largest width × height it may be given: what its memory allows by its HELLO, else the farm's limit.
    public func pixelLimit(_ limits: Limits) -> Int { hello.maxPixels ?? limits.maxPixels }

    /// What it can run, for its claims: what its HELLO (and its latest heartbeat's cached models) said.
    public func capabilities(_ limits: Limits) -> WorkerCapabilities {
        var capabilities = WorkerCapabilities(
            models: hello.models, maxPixels: pixelLimit(limits), vaes: hello.vaes, loras: hello.loras, tags: hello.tags ?? [])
        capabilities.fetchesModels = hello.fetchesModels ?? false
        capabilities.modelHashes = hello.modelHashes ?? []
        return capabilities
    }
}

/// The coordinator's protocol logic as a value: each method takes one event (a message from a worker, a tick, a
/// database answer, a CURVE handshake) with the time from the monotonic clock, and returns what to do. It owns no
/// socket and no connection, so every rule (heartbeat loss, credits and slots, drain and cordon, lease fencing,
/// acknowledging only what is stored) is tested message by message, in milliseconds.
public struct CoordinatorState {
    /// The settings it runs with.
    public let configuration: CoordinatorConfiguration
    /// Connected workers by connection.
    public internal(set) var workers: [Data: ConnectedWorker] = [:]
    /// Connections whose HELLO is being registered, with the names they gave.
    var registering: [Data: String] = [:]
    /// Workers whose heartbeat is being written.
    var touching: Set<String> = []
    /// Tasks whose result or failure is being stored (a resend meanwhile is dropped; the worker resends again).
    var reporting: Set<Int64> = []
    /// Claims asked for and not answered; the next pass waits for them.
    public internal(set) var claimsInFlight = 0
    var sweepInFlight = false
    var flushInFlight = false
    /// Tasks whose first progress is not yet written: written at the next pass, not the next flush, so that a
    /// task shows as started at once whatever the flush period.
    var progressStarted: Set<Int64> = []
    /// Tasks whose progress has been written at least once.
    var progressWritten: Set<Int64> = []
    /// The latest progress of each task, to write at the next flush.
    var pendingProgress: [Int64: PendingProgress] = [:]
    var lastSweep: Instant?
    var lastProgressFlush: Instant
    /// Whether a claim may find work: set by anything that can bring some, cleared by a pass that asked.
    public internal(set) var workWaiting = true
    /// The job of each task handed out (or looked up), for events.
    var taskJobs: [Int64: Int64] = [:]
    /// Events waiting for the database to say which job their task belongs to.
    var eventsAwaitingJob: [Int64: [(Int64) -> FarmEvent]] = [:]
    /// Allow-list answers per worker key, with when they were read.
    var keyDecisions: [String: (allowed: Bool, checked: Instant)] = [:]
    /// Keys whose allow-list answer is being read again.
    var keyChecks: Set<String> = []
    /// The key of the CURVE handshake being decided (libzmq's ZAP socket answers one at a time).
    public internal(set) var handshakeKey: String?
    /// Whether a handshake is being decided; the daemon takes no other until it has answered.
    public var awaitingHandshake: Bool { handshakeKey != nil }
    /// The latest preview of each running task (PNG), for watchers.
    public internal(set) var previews: [Int64: (step: Int, png: Data)] = [:]
    /// The last preview received from any worker (kept after its task ends).
    public internal(set) var lastPreview: (taskID: Int64, step: Int, png: Data)?
    var everConnected = false
    /// What the event being handled asks for.
    var outbox: [CoordinatorAction] = []

    /// A coordinator that knows no worker yet.
    public init(configuration: CoordinatorConfiguration, now: Instant) {
        self.configuration = configuration
        lastProgressFlush = now
    }

    /// The actions gathered while handling one event.
    mutating func take() -> [CoordinatorAction] {
        defer { outbox.removeAll() }
        return outbox
    }

    mutating func send(_ message: WireMessage, to routingID: Data) { outbox.append(.send(message, to: routingID)) }

    mutating func query(_ request: DatabaseRequest) { outbox.append(.query(request)) }

    mutating func log(_ level: Logger.Level, _ message: String, _ metadata: Logger.Metadata = [:]) {
        outbox.append(.log(level, message, metadata))
    }

    mutating func metric(_ metric: CoordinatorMetric) { outbox.append(.metric(metric)) }

    /// The database connected (again), having finished `finishedCancels` tasks of cancels cut short.
    public mutating func databaseConnected(finishedCancels: Int) -> [CoordinatorAction] {
        workWaiting = true
        if everConnected { log(.notice, "database reconnected") }
        everConnected = true
        if finishedCancels > 0 {
            log(.notice, "finished cancelling \(finishedCancels) task(s) of jobs whose cancel was cut short")
        }
        return take()
    }

    /// The database announced new work (a submit, a retry, a requeue elsewhere).
    public mutating func workNotified() { workWaiting = true }

    /// The periodic pass: claims for idle workers, the progress flush, and the once-a-heartbeat sweep.
    public mutating func tick(now: Instant) -> [CoordinatorAction] {
        dispatch()
        flushProgress(now: now)
        sweep(now: now)
        return take()
    }

    /// A message from a connection, which authenticated with `publicKey` under CURVE. `watched`: whether anyone
    /// follows the event stream (previews are posted only then); `isConnected`: whether a connection still has its
    /// link (a name in use by a connection that has lost it is given to the new one).
    public mutating func received(
        _ message: WireMessage, from routingID: Data, publicKey: String? = nil, now: Instant, watched: Bool = false,
        isConnected: (Data) -> Bool = { _ in false }
    ) -> [CoordinatorAction] {
        // A key revoked after its handshake: ignore the connection from then on.
        if configuration.curveSecretKey != nil, !(publicKey.map { keyAllowed($0, now: now) } ?? false) { return take() }
        if case .hello(let hello) = message {
            handleHello(hello, from: routingID, publicKey: publicKey, now: now, isConnected: isConnected)
            return take()
        }
        guard var worker = workers[routingID] else {
            // Its HELLO is being registered: what it sends meanwhile is resent until acknowledged.
            if registering[routingID] == nil {
                // A worker we do not know (e.g. after a coordinator restart) must introduce itself again.
                send(.refused(.init(.unknownWorker, "unknown worker: send HELLO first")), to: routingID)
            }
            return take()
        }
        worker.lastSeen = now
        workers[routingID] = worker
        let workerID = worker.hello.workerID
        switch message {
        case .heartbeat(let beat):
            workers[routingID]?.loadedModel = beat.loadedModel ?? worker.loadedModel
            if let seconds = beat.modelLoadSeconds { metric(.workerModelLoad(worker: workerID, seconds: seconds)) }
            send(.heartbeat(.init(freeSlots: 0)), to: routingID)
            touch(workerID, loadedModel: beat.loadedModel, modelHashes: beat.modelHashes, routingID: routingID)
        case .progress(let report):
            progress(report, from: worker)
        case .preview(let report, let png):
            // Only the connection the task was handed to reports on it.
            guard worker.inFlight.contains(report.taskID), png.count <= configuration.limits.maxPreviewBytes else { break }
            previews[report.taskID] = (report.step, png)
            lastPreview = (report.taskID, report.step, png)
            if watched {
                withJob(of: report.taskID) { job in
                    FarmEvent(
                        name: "preview", job: job,
                        payload: .init(task: report.taskID, job: job, step: report.step, png: png.base64EncodedString()))
                }
            }
        case .result(let header, let png):
            storeResult(header, png, from: worker)
        case .failed(let failure):
            recordFailure(failure, workerID: workerID, routingID: routingID)
        case .hello, .welcome, .refused, .assign, .ack, .cancel, .drain, .blob:
            log(.warning, "ignored \(message.typeName) from a worker", ["worker": "\(workerID)"])
        }
        return take()
    }

    /// The database's answer to a request this state machine made: nil when the database was unreachable or the
    /// statement failed (then nothing is acknowledged: workers resend, and claims and sweeps come round again).
    public mutating func answered(_ request: DatabaseRequest, _ answer: DatabaseAnswer?, now: Instant) -> [CoordinatorAction] {
        switch (request, answer) {
        case (.isKeyAllowed(let key, let forHandshake), _):
            var allowed: Bool?
            if case .keyAllowed(let value) = answer { allowed = value }
            keyAnswered(key, allowed: allowed, forHandshake: forHandshake, now: now)
        case (.registerWorker(let hello, let publicKey, let routingID), _):
            registering[routingID] = nil
            // No database: no answer; the worker says HELLO again.
            guard case .registered(let operatorState) = answer else { break }
            registered(hello, routingID: routingID, publicKey: publicKey, operatorState: operatorState, now: now)
        case (.touchWorker(let workerID, _, _), _):
            touching.remove(workerID)
        case (.jobOfTask(let task), _):
            let waiting = eventsAwaitingJob.removeValue(forKey: task) ?? []
            guard case .job(let found) = answer, let job = found else { break }
            taskJobs[task] = job
            for event in waiting { outbox.append(.post(event(job))) }
        case (.claim(let claim), _):
            claimsInFlight -= 1
            guard case .claimed(let claimed) = answer, !claimed.assignments.isEmpty else { break }
            handOut(claimed, for: claim)
        case (.releaseUnsent, _):
            break
        case (.complete(let header, _, let workerID, let routingID), _):
            reporting.remove(header.taskID)
            guard case .reported(let outcome) = answer else { break }
            resultStored(header, outcome: outcome, workerID: workerID, routingID: routingID)
        case (.fail(let failure, let workerID, let routingID), _):
            reporting.remove(failure.taskID)
            guard case .reported(let outcome) = answer else { break }
            failureStored(failure, outcome: outcome, workerID: workerID, routingID: routingID)
        case (.progress(let reports, let started, _), _):
            flushInFlight = false
            // Not written: kept for the next flush unless newer progress came meanwhile.
            if answer == nil {
                for entry in reports where pendingProgress[entry.report.taskID] == nil { pendingProgress[entry.report.taskID] = entry }
                progressWritten.subtract(started)
                progressStarted.formUnion(started)
            }
        case (.requeueWorker(let workerID), .requeued(let count)):
            lostWorkerRequeued(workerID, count: count)
        case (.requeueWorker, _):
            break
        case (.upkeep, _):
            sweepInFlight = false
            if case .upkeep(let upkeep) = answer { apply(upkeep) }
        }
        return take()
    }

    /// Runs `event` with the job of a task: from the dispatch map, else (tasks held across a restart) once the
    /// database has said; not at all for a task it does not know.
    mutating func withJob(of task: Int64, _ event: @escaping (Int64) -> FarmEvent) {
        if let job = taskJobs[task] {
            outbox.append(.post(event(job)))
            return
        }
        if eventsAwaitingJob[task] == nil { query(.jobOfTask(task)) }
        eventsAwaitingJob[task, default: []].append(event)
    }
}
