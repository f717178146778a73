import ArgumentParser
import FarmModel
import Foundation
import JobStore

/// `farm workers`: the registry.
struct Workers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List workers: name, host, device, state, loaded model, current task and step, it/s, last heartbeat, failures.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let workers = try remote.ask([WorkerRecord].self, "workers", database: database) { try $0.workers() }
        if json { return try printJSON(workers) }
        printTable(
            ["NAME", "HOST", "DEVICE", "STATE", "LOADED", "TASK", "STEP", "IT/S", "RUNNING", "LAST HEARTBEAT", "FAILURES"],
            workers.map { worker in
                let current = worker.current
                let speed = current?.stepsPerSecond.map { String(format: "%.2f", $0) } ?? "-"
                return [
                    worker.name, worker.host, worker.device, worker.state.rawValue, worker.loadedModel.isEmpty ? "-" : worker.loadedModel,
                    current.map { "\($0.id) (job \($0.job))" } ?? "-", current.map { "\($0.step)/\($0.totalSteps)" } ?? "-", speed,
                    "\(worker.running)/\(worker.slots)", "\(worker.secondsSinceHeartbeat) s ago", "\(worker.failures)",
                ]
            })
    }
}

/// `farm drain|cordon|uncordon WORKER`.
enum WorkerControl {
    /// Applies `action` to `worker` through the HTTP API or the database, and prints the state it set.
    static func apply(_ action: OperatorAction, worker: String, database: DatabaseOptions, remote: RemoteOptions) throws {
        if let client = try remote.client() {
            let name = worker.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? worker
            _ = try client.json(WorkerActionReply.self, "POST", "workers/\(name)/\(action.rawValue)")
        } else {
            guard try JobStore(connection: try database.connect()).setWorkerState(worker, action.status) else {
                throw ValidationError("worker \(worker) is not known to the farm")
            }
        }
        print("worker \(worker): \(action.status.rawValue)")
    }
}

/// `farm drain WORKER`.
struct Drain: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drain a worker: it finishes what it holds, takes no more, and exits.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply(.drain, worker: worker, database: database, remote: remote) }
}

/// `farm cordon WORKER`.
struct Cordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cordon a worker: it stays connected but gets no new tasks.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply(.cordon, worker: worker, database: database, remote: remote) }
}

/// `farm uncordon WORKER`.
struct Uncordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Give a cordoned or drained worker work again.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply(.uncordon, worker: worker, database: database, remote: remote) }
}
