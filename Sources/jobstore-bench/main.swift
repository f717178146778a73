// Measures the job store on a throwaway PostgreSQL (or --database URL): enqueue rate
// through COPY, and claim-and-complete rate with one and with four connections.
//
//   swift run -c release jobstore-bench [--tasks 100000] [--database URL]
//
// Thresholds: 100,000 tasks enqueued in under 10 s on a 2-core machine (issue 7); a spec of
// 100,000 tasks submitted end to end, also through `farm submit --server`, in under 15 s (issue 9).
import FarmModel
import Foundation
import JobSpec
import JobStore
import Postgres
import TestSupport

func option(_ name: String) -> String? {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return nil }
    return CommandLine.arguments[index + 1]
}

let taskCount = option("--tasks").flatMap(Int.init) ?? 100_000
let server: TemporaryPostgres? = option("--database") == nil ? try TemporaryPostgres() : nil
func freshDatabase() throws -> String {
    if let server { return try server.createDatabase() }
    return option("--database")!
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

let migrations = try Migrator.locateFolder()
let conninfo = try freshDatabase()
let connection = try Connection(conninfo)
try Migrator(folder: migrations).apply(to: connection)
let store = JobStore(connection: connection)
let parameters = (0..<taskCount).map {
    TaskParameters(prompt: "a red fox in the snow, number \($0)", model: "m", width: 512, height: 512, seed: UInt64($0))
}
let start = now()
let job = try store.enqueue(name: "bench", model: "m", tasks: parameters)
let enqueueTime = now() - start
print(
    String(
        format: "enqueue  %7d tasks via COPY   %6.2f s   %9.0f tasks/s   (< 10 s: %@)",
        taskCount, enqueueTime, Double(taskCount) / enqueueTime, enqueueTime < 10 ? "ok" : "NO"))

let pngBytes = option("--png-bytes").flatMap(Int.init) ?? 200_000
// A hand-written spec of the same size, parsed and submitted end to end (issue 9: < 15 s).
let specText = """
    name: sweep
    model: m
    defaults: {steps: 20, cfg: 7, sampler: euler_a, width: 512, height: 512}
    sweep:
      prompt: ["a red fox in the snow", "a castle at night", "a bowl of soup", "a lighthouse in a storm"]
      seed: "1-\(taskCount / 4)"
    """
let specStart = now()
let spec = try JobSpec.parse(specText, file: "sweep.yaml")
let specJob = try store.enqueue(name: spec.name, model: spec.model, tasks: spec.tasks)
let specTime = now() - specStart
print(String(format: "spec     %7d tasks parsed + submitted  %6.2f s   (< 15 s: %@)", spec.tasks.count, specTime, specTime < 15 ? "ok" : "NO"))
try store.cancel(job: specJob)

// The same through the real CLI and HTTP API: `farm submit FILE --server` against a coordinator
// started here, timed from process start to the printed job id (needs `farm` built beside this tool).
let farm = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("farm")
if FileManager.default.isExecutableFile(atPath: farm.path) {
    @discardableResult
    func runFarm(_ arguments: [String]) throws -> (status: Int32, stdout: String) {
        let process = Process()
        process.executableURL = farm
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    let httpPort = try TemporaryPostgres.freePort()
    let zmqPort = try TemporaryPostgres.freePort()
    let coordinator = Process()
    coordinator.executableURL = farm
    coordinator.arguments = [
        "coordinator", "--insecure", "--database", conninfo, "--listen", "tcp://127.0.0.1:\(zmqPort)", "--http", "127.0.0.1:\(httpPort)",
    ]
    coordinator.standardOutput = FileHandle.nullDevice
    coordinator.standardError = FileHandle.nullDevice
    try coordinator.run()
    defer {
        coordinator.terminate()
        coordinator.waitUntilExit()
    }
    let token = try runFarm(["tokens", "create", "--role", "submit", "--name", "bench", "--database", conninfo]).stdout
    let remote = ["--server", "http://127.0.0.1:\(httpPort)", "--token", token]
    let deadline = now() + 30
    while try runFarm(["jobs"] + remote).status != 0 {
        guard now() < deadline else { fatalError("the coordinator's HTTP API did not come up on port \(httpPort)") }
        Thread.sleep(forTimeInterval: 0.2)
    }
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-bench-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    // A sweep (small file, many tasks) and JSONL (one line per task: the largest body).
    let jsonl = (0..<taskCount).map {
        #"{"prompt": "a red fox in the snow, number \#($0)", "seed": \#($0), "steps": 20, "width": 512, "height": 512}"#
    }
    let files = [("sweep.yaml", specText), ("tasks.jsonl", jsonl.joined(separator: "\n") + "\n")]
    for (name, text) in files {
        let file = folder.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        let arguments = ["submit", file.path, "--model", "m"] + remote
        let started = now()
        let submitted = try runFarm(name.hasSuffix(".yaml") ? arguments.filter { $0 != "--model" && $0 != "m" } : arguments)
        let elapsed = now() - started
        guard submitted.status == 0, let id = Int64(submitted.stdout) else { fatalError("farm submit \(name) failed: \(submitted.stdout)") }
        let queued = try store.progress(job: id).total
        print(
            String(
                format: "cli      %7d tasks farm submit %@ over HTTP  %6.2f s   %.1f MB   (< 15 s: %@)",
                queued, name, elapsed, Double(text.utf8.count) / 1e6, elapsed < 15 && queued == taskCount ? "ok" : "NO"))
        try store.cancel(job: id)
    }
} else {
    print("cli      skipped: no farm binary at \(farm.path) (run `swift build -c release` first)")
}

let png = Data((0..<pngBytes).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
for connections in [1, 4] {
    let perWorker = 1_000
    let done = ThreadSafeBox(0)
    let began = now()
    for worker in 0..<connections {
        Thread {
            do {
                let store = JobStore(connection: try Connection(conninfo))
                var completed = 0
                while completed < perWorker {
                    let batch = try store.claim(
                        workerID: "bench-\(connections)-\(worker)", capabilities: WorkerCapabilities(models: ["m"]),
                        limit: 4, leaseSeconds: 60)
                    if batch.isEmpty { break }
                    for task in batch {
                        let header = WireMessage.ResultHeader(taskID: task.taskID, attempt: task.attempt, width: 512, height: 512, seed: 0)
                        _ = try store.complete(header, png: png, workerID: "bench-\(connections)-\(worker)")
                        completed += 1
                    }
                }
            } catch {
                print("worker \(worker): \(error)")
            }
            done.mutate { $0 += 1 }
        }.start()
    }
    while done.value < connections { Thread.sleep(forTimeInterval: 0.005) }
    let elapsed = now() - began
    print(
        String(
            format: "claim+complete, %d connection%@   %5d tasks  %6.2f s   %9.0f tasks/s   (%d-byte PNG each)",
            connections, connections == 1 ? " " : "s", connections * perWorker, elapsed, Double(connections * perWorker) / elapsed, pngBytes))
}
let progress = try store.progress(job: job)
print("job counts: \(progress.counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: " "))")
server?.stop()
