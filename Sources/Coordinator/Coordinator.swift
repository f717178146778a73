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
    /// Where result images are written (`--image-dir`); nil: into PostgreSQL.
    public var imageDirectory: String?

    /// Silence after which a worker is lost.
    public var workerTimeoutSeconds: Double { heartbeatSeconds * Double(missedHeartbeats) }

    /// Settings with defaults for everything but the endpoint.
    public init(listen: String) {
        self.listen = listen
    }
}

/// The coordinator daemon: accepts workers on a ROUTER socket, hands them queued tasks
/// from the job store (no more than each has announced room for), and stores what they
/// send back. PostgreSQL is the source of truth: if the database goes away the
/// coordinator stops dispatching, leaves results unacknowledged (workers resend them)
/// and reconnects; a restarted coordinator resumes from the database.
///
/// The decisions are `CoordinatorState`'s; this class owns the sockets, the database lane,
/// the event stream, the logger and the metrics, and carries out what the state asks. Every
/// statement runs on the `DatabaseLane`'s thread and comes back as an answer, so the database
/// never holds up a heartbeat.
public final class CoordinatorServer {
    let configuration: CoordinatorConfiguration
    let database: DatabaseLane
    var listener: WorkListener?
    let socket: Socket
    let zap: ZAPHandler?
    /// The handshake `state` is deciding.
    var pendingHandshake: ZAPRequest?
    /// The protocol's state: workers, claims, reports and progress in flight.
    public private(set) var state: CoordinatorState
    /// Live events for HTTP watchers: progress, previews, results and failures.
    public let events = FarmEvents()
    /// Where it logs: events of tasks carry task, job, worker and attempt as metadata.
    public var logger = Logger(label: "farm.coordinator")
    var metrics = CoordinatorMetrics()

    /// Binds the ROUTER socket and starts the database lane (`conninfo` nil: the PG* variables), which
    /// connects with the first piece of work and again whenever the connection is lost.
    public init(configuration: CoordinatorConfiguration, conninfo: String?, context: ZMQContext) throws {
        self.configuration = configuration
        state = CoordinatorState(configuration: configuration, now: .now)
        // The ZAP handler must be bound before the first CURVE handshake can arrive.
        zap = configuration.curveSecretKey == nil ? nil : try ZAPHandler(context: context)
        socket = try Socket(context, .router)
        try socket.setMaxMessageSize(configuration.limits.maxMessageBytes)
        if let key = configuration.curveSecretKey { try socket.makeCurveServer(secretKey: key) }
        try socket.bind(configuration.listen)
        weak var server: CoordinatorServer?
        let images = try configuration.imageDirectory.map { try ImageDirectory(path: $0) }
        database = try DatabaseLane(conninfo: conninfo, imageDirectory: images) { server?.databaseNotice($0) }
        server = self
    }

    deinit {
        database.stop()
    }

    /// The endpoint the socket is bound to (with the real port when `:*` was asked).
    public var endpoint: String { socket.lastEndpoint }

    /// Workers currently connected.
    public var connectedWorkers: Int { state.workers.count }

    /// True while the database is reachable.
    public var databaseConnected: Bool { database.connected }

    /// The latest preview of each running task (PNG), for watchers.
    public var previews: [Int64: (step: Int, png: Data)] { state.previews }

    /// The last preview received from any worker (kept after its task ends).
    public var lastPreview: (taskID: Int64, step: Int, png: Data)? { state.lastPreview }

    private func databaseNotice(_ notice: DatabaseLane.Notice) {
        switch notice {
        case .connected(let listener, let finishedCancels):
            self.listener = listener
            perform(state.databaseConnected(finishedCancels: finishedCancels))
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
        let zapIndex: Int? = zap != nil && !state.awaitingHandshake ? next : nil
        if let zap, zapIndex != nil {
            poller.add(.socket(zap.socket))
            next += 1
        }
        let listenerIndex: Int? = listener == nil ? nil : next
        if let listener { poller.add(.fileDescriptor(listener.socket)) }
        let ready = try poller.poll(timeout: timeout)
        if ready[1] { database.deliver() }
        if let zap, let zapIndex, ready[zapIndex], let request = try zap.receiveRequest() {
            pendingHandshake = request
            perform(state.handshake(publicKey: request.publicKey, now: .now))
        }
        if ready[0] {
            while let (frames, userID) = try socket.receiveMessage(dontWait: true) {
                handle(frames, publicKey: userID)
            }
        }
        if let listener, let listenerIndex, ready[listenerIndex] {
            if (try? listener.drain()) == true { state.workNotified() }
        }
        perform(state.tick(now: .now))
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
        let probe = WireMessage.heartbeat(.init(freeSlots: 0)).frames()
        perform(
            state.received(
                message, from: routingID, publicKey: publicKey, now: .now, watched: events.subscriberCount > 0,
                isConnected: { [socket] in (try? socket.routes(to: $0, probe: probe)) == true }))
    }

    /// Carries out what the state machine asked for.
    private func perform(_ actions: [CoordinatorAction]) {
        for action in actions {
            switch action {
            case .send(let message, let routingID):
                send(message, to: routingID)
            case .query(let request):
                database.run(
                    { try request.run(on: $0) },
                    then: { [weak self] answer in
                        guard let self else { return }
                        self.perform(self.state.answered(request, answer, now: .now))
                    })
            case .answerHandshake(let allowed):
                guard let zap, let request = pendingHandshake else { continue }
                pendingHandshake = nil
                do {
                    try zap.reply(to: request, allowed: allowed)
                } catch {
                    logger.error("cannot answer a CURVE handshake", metadata: ["error": "\(error)"])
                }
            case .post(let event):
                events.post(event)
            case .log(let level, let message, let metadata):
                logger.log(level: level, "\(message)", metadata: metadata)
            case .metric(let metric):
                metrics.record(metric)
            }
        }
    }

    private func send(_ message: WireMessage, to routingID: Data) {
        do {
            try socket.send([routingID] + message.frames(), dontWait: true)
            metrics.messages.count(message.typeName, received: false)
        } catch {
            logger.warning(
                "cannot send \(message.typeName)",
                metadata: [
                    "peer": "\(routingID.hexPrefix)", "worker": "\(state.workers[routingID]?.hello.workerID ?? "?")",
                    "error": "\(error)",
                ])
        }
    }
}

extension Data {
    var hexPrefix: String { prefix(8).map { String(format: "%02x", $0) }.joined() }
}
