import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

/// A `farm` daemon in its own process, its output in a log file. Releasing it kills the process,
/// and optimised builds release objects after their last use: a test that needs its daemons
/// running to its end holds them with `withExtendedLifetime`.
final class FarmProcess {
    let process = Process()
    let log: URL

    init(_ arguments: [String], name: String, executable: URL = farmBinary, environment: [String: String]? = nil) throws {
        log = FileManager.default.temporaryDirectory.appendingPathComponent("farm-\(name)-\(UUID().uuidString.prefix(6)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    /// Sends a signal (SIGKILL for a crash).
    func signal(_ value: Int32) { kill(process.processIdentifier, value) }

    /// Crashes it (SIGKILL) and waits up to five seconds for it to be dead. Reads the kernel's
    /// process state rather than `waitUntilExit` or `isRunning`: Foundation notices exits by
    /// waiting on its children one at a time, so with many children it can lag by seconds.
    func crash() {
        signal(SIGKILL)
        let stat = "/proc/\(process.processIdentifier)/stat"
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            // "pid (name) S …": gone, or a zombie (Z) waiting to be reaped, means dead.
            guard let text = try? String(contentsOfFile: stat, encoding: .utf8),
                let state = text.split(separator: ")").last?.split(separator: " ").first,
                state != "Z" && state != "X"
            else { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// The log so far, for failure messages.
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { crash() }
        try? FileManager.default.removeItem(at: log)
    }
}

/// A migrated database on `server` and a free coordinator endpoint.
func farmDatabase(_ server: TemporaryPostgres = .shared) throws -> (conninfo: String, endpoint: String) {
    let (conninfo, _) = try migratedDatabase(server)
    return (conninfo, "tcp://127.0.0.1:\(try TemporaryPostgres.freePort())")
}

/// A coordinator on `conninfo` listening at `endpoint`, with the fast heartbeats the fault tests need.
func startCoordinator(_ conninfo: String, _ endpoint: String) throws -> FarmProcess {
    try FarmProcess(
        [
            "coordinator", "--insecure", "--database", conninfo, "--listen", endpoint, "--heartbeat", "0.2",
            "--missed-heartbeats", "10", "--lease-seconds", "30",
        ], name: "coordinator")
}

/// A worker that renders with the synthetic engine (no model), `delay` seconds a task spread over its steps.
func startSyntheticWorker(_ endpoint: String, name: String, delay: Double) throws -> FarmProcess {
    try FarmProcess(
        [
            "worker", "--insecure", "--coordinator", endpoint, "--name", name, "--engine", "synthetic",
            "--synthetic-delay", String(delay),
        ], name: name)
}

/// `count` small synthetic tasks whose prompts name their index.
func syntheticTasks(_ count: Int) -> [TaskParameters] {
    (0..<count).map { TaskParameters(prompt: "task \($0)", model: "synthetic", width: 32, height: 32, steps: 5, seed: UInt64($0)) }
}

/// Polls until `condition` holds or `seconds` pass.
func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return try condition()
}

/// The id and attempt of a task `worker` is rendering (its first step reported), waiting up to 30 s for one.
func awaitTaskInProgress(_ store: JobStore, worker: String? = nil) throws -> (id: Int64, attempt: Int)? {
    var found: (id: Int64, attempt: Int)?
    _ = try waitFor(30) {
        found = try taskInProgress(store, worker: worker)
        return found != nil
    }
    return found
}

/// The id and attempt of a task `worker` is rendering (its first step reported), if any.
func taskInProgress(_ store: JobStore, worker: String? = nil) throws -> (id: Int64, attempt: Int)? {
    let rows = try store.testConnection.query(
        """
        SELECT id, attempt FROM tasks WHERE state = 'running' AND step >= 1 AND ($1::text IS NULL OR lease_owner = $1)
        ORDER BY id LIMIT 1
        """, [worker]
    ).rows
    guard let row = rows.first else { return nil }
    return (try row.decode("id"), try row.decode("attempt"))
}

/// Every task done, one image each, none duplicated.
func expectAllDoneOnce(_ store: JobStore, job: Int64, count: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(try store.progress(job: job).counts == [.done: count], sourceLocation: sourceLocation)
    let images = try store.images(job: job)
    #expect(images.count == count && Set(images.map(\.taskID)).count == count, sourceLocation: sourceLocation)
    for image in images {
        let decoded = try PNGImage(pngData: image.png)
        #expect(decoded.textValue("parameters")?.hasPrefix("task \(image.index)\nSteps: ") == true, sourceLocation: sourceLocation)
    }
}
