// Measures the job store on a throwaway PostgreSQL (or --database URL): enqueue rate
// through COPY, and claim-and-complete rate with one and with four connections.
//
//   swift run -c release jobstore-bench [--tasks 100000] [--database URL]
//
// Threshold (issue 7): 100,000 tasks enqueued in under 10 s on a 2-core machine.
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
print(String(format: "enqueue  %7d tasks via COPY   %6.2f s   %9.0f tasks/s   (< 10 s: %@)",
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
                    let batch = try store.claim(workerID: "bench-\(connections)-\(worker)", capabilities: WorkerCapabilities(models: ["m"]),
                                                limit: 4, leaseSeconds: 60)
                    if batch.isEmpty { break }
                    for task in batch {
                        let header = WireMessage.ResultHeader(taskID: task.taskID, attempt: task.attempt, width: 512, height: 512, seed: 0)
                        _ = try store.complete(header, png: png)
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
    print(String(format: "claim+complete, %d connection%@   %5d tasks  %6.2f s   %9.0f tasks/s   (%d-byte PNG each)",
                 connections, connections == 1 ? " " : "s", connections * perWorker, elapsed, Double(connections * perWorker) / elapsed, pngBytes))
}
let progress = try store.progress(job: job)
print("job counts: \(progress.counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: " "))")
server?.stop()
