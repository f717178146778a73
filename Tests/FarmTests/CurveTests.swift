import Coordinator
import FarmModel
import Foundation
import JobStore
import Postgres
import TestSupport
import Testing
import Worker
import ZeroMQ

/// Runs a worker with `curve` link settings against `coordinator` for up to `seconds`; returns
/// whether the coordinator registered it. `whileJoined` runs while a joined worker is still up.
private func tryJoin(
    _ coordinator: CoordinatorServer, name: String, curve: (serverKey: String, keys: CurveKeyPair)?,
    seconds: Double = 2.5, whileJoined: ((ThreadSafeBox<Bool>) throws -> Void)? = nil
) throws -> Bool {
    let stop = ThreadSafeBox(false)
    let finished = ThreadSafeBox(false)
    let before = coordinator.connectedWorkers
    let endpoint = coordinator.endpoint
    var settings = WorkerConfiguration(coordinator: endpoint, workerID: name)
    settings.curve = curve
    settings.reconnectBackoff = (0.1, 0.2)
    startWorkerThread(settings, tick: 0.02, stop: stop) { finished.mutate { $0 = true } }
    let deadline = Date().addingTimeInterval(seconds)
    while coordinator.connectedWorkers == before && Date() < deadline { try coordinator.runOnce(timeout: 0.02) }
    let joined = coordinator.connectedWorkers > before
    if joined, let whileJoined { try whileJoined(stop) }
    stop.mutate { $0 = true }
    while !finished.value { try coordinator.runOnce(timeout: 0.02) }
    return joined
}

@Test func curveAdmitsOnlyAllowedWorkerKeys() throws {
    let (conninfo, connection) = try migratedDatabase()
    let store = JobStore(connection: connection)
    let server = try CurveKeyPair.generate()
    let allowed = try CurveKeyPair.generate()
    let stranger = try CurveKeyPair.generate()
    try store.allowWorkerKey(allowed.publicKey, name: "good")

    var settings = CoordinatorConfiguration(listen: "tcp://127.0.0.1:*")
    settings.curveSecretKey = server.secretKey
    settings.keyCheckSeconds = 0.1
    (settings.heartbeatSeconds, settings.missedHeartbeats) = (0.1, 3)
    // One context per coordinator: the ZAP handler is bound per context.
    let lines = ThreadSafeBox<[String]>([])
    let coordinator = try makeCoordinator(conninfo, settings: settings, logger: collectingLogger(into: lines))

    // A key that is not on the allow-list fails the handshake, and the coordinator says why.
    #expect(try !tryJoin(coordinator, name: "stranger", curve: (server.publicKey, stranger)))
    #expect(lines.value.contains { $0.contains("refused a worker connection") && $0.contains("key=\(stranger.publicKey)") })
    // A plain-TCP worker cannot talk to a CURVE coordinator, nor can one that trusts another server key.
    #expect(try !tryJoin(coordinator, name: "plain", curve: nil))
    #expect(try !tryJoin(coordinator, name: "misled", curve: (try CurveKeyPair.generate().publicKey, allowed)))
    #expect(coordinator.connectedWorkers == 0)

    // The allowed key joins; once revoked, its live connection is ignored and the worker is lost.
    let joined = try tryJoin(coordinator, name: "good", curve: (server.publicKey, allowed)) { _ in
        #expect(try store.revokeWorkerKey(allowed.publicKey))
        let deadline = Date().addingTimeInterval(3)
        while coordinator.connectedWorkers > 0 && Date() < deadline { try coordinator.runOnce(timeout: 0.02) }
        #expect(coordinator.connectedWorkers == 0, "a revoked worker stays connected")
    }
    #expect(joined, "coordinator log: \(lines.value)")
    #expect(lines.value.contains { $0.contains("worker key was revoked") && $0.contains("key=\(allowed.publicKey)") })
    #expect(try !tryJoin(coordinator, name: "good-again", curve: (server.publicKey, allowed)))
    #expect(try store.workerKeys().map(\.publicKey) == [allowed.publicKey])
}

@Test func curveKeyFilesRoundTrip() throws {
    let pair = try CurveKeyPair.generate()
    #expect(try CurveKeyPair(fileContents: pair.fileContents) == pair)
    #expect(try CurveKeyPair.publicKey(from: pair.fileContents) == pair.publicKey)
    #expect(try CurveKeyPair.publicKey(from: pair.publicKey + "\n") == pair.publicKey)
    #expect(throws: CurveKeyError.self) { try CurveKeyPair(secretKey: "too short") }
    #expect(throws: CurveKeyError.self) { try CurveKeyPair.publicKey(from: "public-key = nope") }
    #expect(!CurveKeyPair.isKey(String(repeating: "~", count: 41)))
}

/// A worker whose key is allowed only after its first handshake was refused gets in by itself: libzmq does not
/// retry a refused CURVE handshake, so the worker connects afresh when nobody has answered for `failOverSeconds`.
@Test func aKeyAllowedAfterTheFirstRefusalGetsIn() throws {
    let (conninfo, connection) = try migratedDatabase()
    let store = JobStore(connection: connection)
    let server = try CurveKeyPair.generate()
    let late = try CurveKeyPair.generate()
    var settings = CoordinatorConfiguration(listen: "tcp://127.0.0.1:*")
    settings.curveSecretKey = server.secretKey
    let lines = ThreadSafeBox<[String]>([])
    let coordinator = try makeCoordinator(conninfo, settings: settings, logger: collectingLogger(into: lines))
    let stop = ThreadSafeBox(false)
    let finished = ThreadSafeBox(false)
    let endpoint = coordinator.endpoint
    var worker = WorkerConfiguration(coordinator: endpoint, workerID: "late")
    worker.curve = (server.publicKey, late)
    (worker.reconnectBackoff, worker.failOverSeconds) = ((0.1, 0.2), 1)
    startWorkerThread(worker, tick: 0.02, stop: stop) { finished.mutate { $0 = true } }
    let refused = Date().addingTimeInterval(10)
    while !lines.value.contains(where: { $0.contains("refused a worker connection") }) && Date() < refused {
        try coordinator.runOnce(timeout: 0.02)
    }
    #expect(lines.value.contains { $0.contains("refused a worker connection") && $0.contains(late.publicKey) })
    try store.allowWorkerKey(late.publicKey, name: "late")
    let joined = Date().addingTimeInterval(15)
    while coordinator.connectedWorkers == 0 && Date() < joined { try coordinator.runOnce(timeout: 0.02) }
    #expect(coordinator.connectedWorkers == 1, "the worker did not get in once its key was allowed")
    stop.mutate { $0 = true }
    while !finished.value { try coordinator.runOnce(timeout: 0.02) }
}
