// Measures the coordinator's dispatch with many synthetic workers (threads of this
// process, each with its own DEALER socket), on a throwaway PostgreSQL:
//   - throughput: one job of N zero-delay tasks rendered by all workers (tasks/s);
//   - latency: rounds of small jobs submitted to idle workers, time from a task's
//     creation (queued) to its lease (assigned), p50 and p99, from the database's clock.
//
//   swift run -c release dispatch-bench [--workers 100] [--tasks 2000] [--rounds 20]
import Coordinator
import FarmModel
import Foundation
import JobStore
import Logging
import Postgres
import TestSupport
import Worker
import ZeroMQ

func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count,
        let value = Int(CommandLine.arguments[index + 1])
    else { return fallback }
    return value
}

let workerCount = option("--workers", 100)
let taskCount = option("--tasks", 2000)
let rounds = option("--rounds", 20)
let server = try TemporaryPostgres()
let conninfo = try server.createDatabase()
try Migrator(folder: try Migrator.locateFolder()).apply(to: Connection(conninfo))
let store = JobStore(connection: try Connection(conninfo))
let context = ZMQContext()
var settings = CoordinatorConfiguration(listen: "tcp://127.0.0.1:*")
settings.heartbeatSeconds = 1
let coordinator = try CoordinatorServer(configuration: settings, conninfo: conninfo, context: context)
coordinator.logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
let endpoint = coordinator.endpoint
let stop = ThreadSafeBox(false)
let coordinatorDone = ThreadSafeBox(false)
Thread {
    do { try coordinator.run(tick: 0.01) { stop.value } } catch { print("coordinator: \(error)") }
    coordinatorDone.mutate { $0 = true }
}.start()
let running = ThreadSafeBox(0)
for index in 0..<workerCount {
    Thread {
        do {
            let worker = try WorkerDaemon(
                configuration: WorkerConfiguration(coordinator: endpoint, workerID: "w\(index)"),
                renderer: TestPatternRenderer(models: ["synthetic"]), context: context)
            worker.logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
            try worker.run(tick: 0.02) { stop.value }
        } catch { print("worker \(index): \(error)") }
        running.mutate { $0 -= 1 }
    }.start()
    running.mutate { $0 += 1 }
}
let registered = { () -> Int in (try? store.workers().count) ?? 0 }
while registered() < workerCount { Thread.sleep(forTimeInterval: 0.1) }
print("\(workerCount) synthetic workers connected")

func tasks(_ count: Int, tag: String) -> [TaskParameters] {
    (0..<count).map { TaskParameters(prompt: "\(tag) \($0)", model: "synthetic", width: 8, height: 8, steps: 1, seed: UInt64($0)) }
}
func waitDone(_ job: Int64) throws {
    while try !store.progress(job: job).isFinished { Thread.sleep(forTimeInterval: 0.01) }
}

let started = Date()
let big = try store.enqueue(name: "throughput", model: "synthetic", tasks: tasks(taskCount, tag: "t"))
try waitDone(big)
let elapsed = Date().timeIntervalSince(started)
print(
    String(
        format: "throughput: %d tasks in %.2f s = %.0f tasks/s (dispatch, render of an 8×8 card, result stored)",
        taskCount, elapsed, Double(taskCount) / elapsed))

var latencies: [Double] = []
for round in 0..<rounds {
    let job = try store.enqueue(name: "latency \(round)", model: "synthetic", tasks: tasks(workerCount / 2, tag: "l"))
    try waitDone(job)
    latencies += try store.dispatchLatencies(job: job)
    Thread.sleep(forTimeInterval: 0.2)
}
latencies.sort()
func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
print(
    String(
        format: "dispatch latency (queued → assigned) over %d tasks: p50 %.1f ms, p99 %.1f ms",
        latencies.count, percentile(0.5) * 1000, percentile(0.99) * 1000))
stop.mutate { $0 = true }
while running.value > 0 || !coordinatorDone.value { Thread.sleep(forTimeInterval: 0.05) }
server.stop()
