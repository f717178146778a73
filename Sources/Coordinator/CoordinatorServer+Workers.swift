import FarmModel
import Foundation
import JobStore
import Logging
import ZeroMQ

/// Who may talk to the coordinator: CURVE keys on the allow-list, HELLOs, names, heartbeats.
extension CoordinatorServer {
    /// Takes the next CURVE handshake and asks the database whether its key is allowed; the answer goes back
    /// to libzmq when the database has given it (no database: the key's last known answer, else refused).
    func checkHandshake() throws {
        guard let zap, pendingHandshake == nil, let request = try zap.receiveRequest() else { return }
        guard let key = request.publicKey else {
            try zap.reply(to: request, allowed: false)
            logger.warning("refused a worker connection without a CURVE key", metadata: ["mechanism": "\(request.mechanism)"])
            return
        }
        pendingHandshake = request
        database.run(
            { try $0.isWorkerKeyAllowed(key) },
            then: { [weak self] answer in
                guard let self else { return }
                if let answer { self.keyDecisions[key] = (answer, Date()) }
                let allowed = answer ?? self.keyDecisions[key]?.allowed ?? false
                self.pendingHandshake = nil
                do {
                    try zap.reply(to: request, allowed: allowed)
                } catch {
                    self.logger.error("cannot answer a CURVE handshake", metadata: ["error": "\(error)"])
                }
                if !allowed {
                    self.logger.warning(
                        "refused a worker connection: its key is not on the allow-list (farm keys allow)", metadata: ["key": "\(key)"])
                }
            })
    }

    /// Whether messages from a connection with this key are taken: its last answer from the allow-list, read
    /// again in the background once older than `keyCheckSeconds` (revocations reach live connections so).
    func isKeyAllowed(_ key: String) -> Bool {
        let decision = keyDecisions[key]
        if decision.map({ Date().timeIntervalSince($0.checked) >= configuration.keyCheckSeconds }) ?? true,
            keyChecks.insert(key).inserted
        {
            database.run(
                { try $0.isWorkerKeyAllowed(key) },
                then: { [weak self] answer in
                    guard let self else { return }
                    self.keyChecks.remove(key)
                    guard let answer else { return }
                    if !answer && self.keyDecisions[key]?.allowed == true {
                        self.logger.warning("worker key was revoked: ignoring its connection", metadata: ["key": "\(key)"])
                    }
                    self.keyDecisions[key] = (answer, Date())
                })
        }
        return decision?.allowed ?? false
    }

    /// A worker introduces itself: refused at once for a wrong protocol, absurd limits or a name in use, else
    /// registered in the database and welcomed when that is done.
    func handleHello(_ hello: WireMessage.Hello, from routingID: Data, publicKey: String?) {
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
            if (try? socket.routes(to: otherID, probe: WireMessage.heartbeat(.init(freeSlots: 0)).frames())) == true {
                refuse(routingID, .nameInUse, nameInUse, worker: hello.workerID)
                return
            }
            workers[otherID] = nil
        }
        registering[routingID] = hello.workerID
        database.run(
            { try $0.registerWorker(hello, publicKey: publicKey) },
            then: { [weak self] answer in
                guard let self else { return }
                self.registering[routingID] = nil
                // No database: no answer; the worker says HELLO again.
                guard let answer else { return }
                guard let operatorState = answer else {
                    self.refuse(
                        routingID, .nameBoundToOtherKey,
                        "the name \(hello.workerID) belongs to another worker key; start this one with another --name", worker: hello.workerID)
                    return
                }
                self.welcome(hello, routingID: routingID, publicKey: publicKey, operatorState: operatorState)
            })
    }

    private func welcome(_ hello: WireMessage.Hello, routingID: Data, publicKey: String?, operatorState: String) {
        var worker = ConnectedWorker(routingID: routingID, hello: hello, publicKey: publicKey, lastSeen: Date())
        worker.operatorState = operatorState
        worker.inFlight = Set(hello.activeTasks ?? [])
        workers[routingID] = worker
        workWaiting = true
        send(
            .welcome(.init(heartbeatSeconds: configuration.heartbeatSeconds, timeoutSeconds: configuration.workerTimeoutSeconds)),
            to: routingID)
        let device = hello.device.map { " (\($0.summary))" } ?? ""
        logger.info(
            "worker \(hello.workerID) on \(hello.host)\(device) joined with \(hello.slots) slot(s), holding \(worker.inFlight.count) task(s)",
            metadata: ["worker": "\(hello.workerID)", "host": "\(hello.host)"])
    }

    /// Notes a heartbeat in the database; one write per worker at a time (a slow database skips beats, not the loop).
    func touch(_ workerID: String, loadedModel: String?) {
        guard touching.insert(workerID).inserted else { return }
        database.run(
            { try $0.touchWorker(workerID, loadedModel: loadedModel) },
            then: { [weak self] _ in
                self?.touching.remove(workerID)
            })
    }
}
