import ArgumentParser
import FarmModel
import Foundation
import JobStore
import Postgres

/// `farm workers`: the registry.
struct Workers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List workers: name, host, device, state, loaded model, current task and step, it/s, last heartbeat, failures.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let value: Any
        if let client = try remote.client() {
            value = try client.json("GET", "workers")
        } else {
            value = try jsonRoundTrip(try JobStore(connection: try database.connect()).workerSummaries())
        }
        if json { return try printJSON(value) }
        printTable(
            ["NAME", "HOST", "DEVICE", "STATE", "LOADED", "TASK", "STEP", "IT/S", "RUNNING", "LAST HEARTBEAT", "FAILURES"],
            (value as? [[String: Any]] ?? []).map { worker in
                let current = worker["current"] as? [String: Any]
                let speed = (current?["steps_per_second"] as? NSNumber).map { String(format: "%.2f", $0.doubleValue) } ?? "-"
                let loaded = "\(worker["loaded_model"] ?? "")"
                return [
                    "\(worker["name"] ?? "")", "\(worker["host"] ?? "")", "\(worker["device"] ?? "")", "\(worker["state"] ?? "")",
                    loaded.isEmpty ? "-" : loaded,
                    current.map { "\(intValue($0["task"])) (job \(intValue($0["job"])))" } ?? "-",
                    current.map { "\(intValue($0["step"]))/\(intValue($0["total_steps"]))" } ?? "-", speed,
                    "\(intValue(worker["running"]))/\(intValue(worker["slots"]))",
                    "\((worker["seconds_since_heartbeat"] as? NSNumber)?.doubleValue ?? 0) s ago", "\(intValue(worker["failures"]))",
                ]
            })
    }
}

/// `farm drain|cordon|uncordon WORKER`.
enum WorkerControl {
    static func apply(_ state: String, worker: String, database: DatabaseOptions, remote: RemoteOptions) throws {
        if let client = try remote.client() {
            let action = ["draining": "drain", "cordoned": "cordon", "online": "uncordon"][state] ?? state
            let name = worker.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? worker
            _ = try client.json("POST", "workers/\(name)/\(action)")
        } else {
            guard try JobStore(connection: try database.connect()).setWorkerState(worker, state) else {
                throw ValidationError("worker \(worker) is not known to the farm")
            }
        }
        print("worker \(worker): \(state)")
    }
}

/// `farm drain WORKER`.
struct Drain: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drain a worker: it finishes what it holds, takes no more, and exits.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply("draining", worker: worker, database: database, remote: remote) }
}

/// `farm cordon WORKER`.
struct Cordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cordon a worker: it stays connected but gets no new tasks.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply("cordoned", worker: worker, database: database, remote: remote) }
}

/// `farm uncordon WORKER`.
struct Uncordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Give a cordoned or drained worker work again.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply("online", worker: worker, database: database, remote: remote) }
}
