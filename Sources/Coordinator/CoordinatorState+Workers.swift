import FarmModel
import Foundation
import JobStore
import Logging

/// Who may talk to the coordinator: CURVE keys on the allow-list, HELLOs, names, heartbeats.
extension CoordinatorState {
    /// A CURVE handshake: its key is looked up on the allow-list and the answer goes back with `answerHandshake`
    /// (no database: the key's last known answer, else refused). The daemon hands over one handshake at a time.
    public mutating func handshake(publicKey: String?, now: Instant) -> [CoordinatorAction] {
        guard let key = publicKey else {
            outbox.append(.answerHandshake(allowed: false))
            log(.warning, "refused a worker connection without a CURVE key")
            return take()
        }
        handshakeKey = key
        query(.isKeyAllowed(key, forHandshake: true))
        return take()
    }

    /// Whether messages from a connection with this key are taken: its last answer from the allow-list, read
    /// again in the background once older than `keyCheckSeconds` (revocations reach live connections so).
    mutating func keyAllowed(_ key: String, now: Instant) -> Bool {
        let decision = keyDecisions[key]
        if decision.map({ now.seconds(since: $0.checked) >= configuration.keyCheckSeconds }) ?? true, keyChecks.insert(key).inserted {
            query(.isKeyAllowed(key, forHandshake: false))
        }
        return decision?.allowed ?? false
    }

    mutating func keyAnswered(_ key: String, allowed answer: Bool?, forHandshake: Bool, now: Instant) {
        if forHandshake {
            if let answer { keyDecisions[key] = (answer, now) }
            let allowed = answer ?? keyDecisions[key]?.allowed ?? false
            handshakeKey = nil
            outbox.append(.answerHandshake(allowed: allowed))
            if !allowed {
                log(.warning, "refused a worker connection: its key is not on the allow-list (farm keys allow)", ["key": "\(key)"])
            }
            return
        }
        keyChecks.remove(key)
        guard let answer else { return }
        if !answer && keyDecisions[key]?.allowed == true {
            log(.warning, "worker key was revoked: ignoring its connection", ["key": "\(key)"])
        }
        keyDecisions[key] = (answer, now)
    }

    /// A worker introduces itself: refused at once for a wrong protocol, absurd limits or a name in use, else
    /// registered in the database and welcomed when that is done.
    mutating func handleHello(
        _ hello: WireMessage.Hello, from routingID: Data, publicKey: String?, now: Instant, isConnected: (Data) -> Bool
    ) {
        guard hello.version == WireMessage.protocolVersion else {
            refuse(
                routingID, .protocolVersion,
                "protocol version \(hello.version) is not supported; this coordinator speaks \(WireMessage.protocolVersion)",
                worker: hello.workerID)
            return
        }
        if let problem = hello.problem(limits: configuration.limits) {
            refuse(routingID, .badHello, problem, worker: hello.workerID)
            return
        }
        guard registering[routingID] == nil else { return }
        // One live connection per name: another connection with it is refused while it still has its link
        // (a worker killed and started again has lost its old link, which then gives way), and while another
        // connection's HELLO with the name is being registered.
        let nameInUse = "the name \(hello.workerID) is in use by a connected worker; start this one with another --name"
        if registering.contains(where: { $0.key != routingID && $0.value == hello.workerID }) {
            refuse(routingID, .nameInUse, nameInUse, worker: hello.workerID)
            return
        }
        if let (otherID, _) = workers.first(where: { $0.key != routingID && $0.value.hello.workerID == hello.workerID }) {
            if isConnected(otherID) {
                refuse(routingID, .nameInUse, nameInUse, worker: hello.workerID)
                return
            }
            workers[otherID] = nil
        }
        registering[routingID] = hello.workerID
        query(.registerWorker(hello, publicKey: publicKey, routingID: routingID))
    }

    /// The database recorded a HELLO: welcome the worker, or refuse it when its name belongs to another key.
    mutating func registered(_ hello: WireMessage.Hello, routingID: Data, publicKey: String?, operatorState: WorkerStatus?, now: Instant) {
        guard let operatorState else {
            refuse(
                routingID, .nameBoundToOtherKey,
                "the name \(hello.workerID) belongs to another worker key; start this one with another --name", worker: hello.workerID)
            return
        }
        var worker = ConnectedWorker(routingID: routingID, hello: hello, publicKey: publicKey, lastSeen: now)
        worker.operatorState = operatorState
        worker.inFlight = Set(hello.activeTasks ?? [])
        workers[routingID] = worker
        workWaiting = true
        send(
            .welcome(.init(heartbeatSeconds: configuration.heartbeatSeconds, timeoutSeconds: configuration.workerTimeoutSeconds)),
            to: routingID)
        let device = hello.device.map { " (\($0.summary))" } ?? ""
        log(
            .info,
            "worker \(hello.workerID) on \(hello.host)\(device) joined with \(hello.slots) slot(s), holding \(worker.inFlight.count) task(s)",
            ["worker": "\(hello.workerID)", "host": "\(hello.host)"])
    }

    /// Refuses a connection, logging why.
    mutating func refuse(_ routingID: Data, _ code: Refusal.Code, _ reason: String, worker: String) {
        send(.refused(.init(code, reason)), to: routingID)
        log(.warning, "refused worker \(worker.prefix(64).debugDescription): \(reason)", ["code": "\(code.rawValue)"])
    }

    /// Notes a heartbeat in the database; one write per worker at a time (a slow database skips beats, not the loop).
    /// A changed list of cached store models (`modelHashes`) is taken into the worker's claims and written with the
    /// beat; while a write is in flight the change waits for the next beat, which carries the list again.
    mutating func touch(_ workerID: String, loadedModel: String?, modelHashes: [String]? = nil, routingID: Data? = nil) {
        guard touching.insert(workerID).inserted else { return }
        var changed: [String]?
        // A list that would not pass a HELLO's checks is ignored, as a bad HELLO is refused.
        if let modelHashes, let routingID, workers[routingID]?.hello.modelHashes != modelHashes,
            modelHashes.count <= configuration.limits.maxWorkerModels, modelHashes.allSatisfy(TaskParameters.isStoredImageName)
        {
            workers[routingID]?.hello.modelHashes = modelHashes
            changed = modelHashes
        }
        query(.touchWorker(workerID, loadedModel: loadedModel, modelHashes: changed))
    }
}
