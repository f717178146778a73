import ArgumentParser
import FarmModel
import Foundation
import JobStore
import Postgres

/// Prints `value` as JSON (sorted keys) for scripts.
func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
}

/// Pads cells into aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

/// `farm jobs`: every job with its counts.
struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List jobs with their tasks by state.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let value: Any
        if let client = try remote.client() {
            value = try client.json("GET", "jobs")
        } else {
            value = try jsonRoundTrip(try JobStore(connection: try database.connect()).jobSummaries())
        }
        if json { return try printJSON(value) }
        let jobs = value as? [[String: Any]] ?? []
        printTable(
            ["ID", "NAME", "MODEL", "STATE", "TASKS", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"],
            jobs.map { job in
                let counts = job["counts"] as? [String: Any] ?? [:]
                return [
                    "\(intValue(job["id"]))", "\(job["name"] ?? "")", "\(job["model"] ?? "")", "\(job["state"] ?? "")",
                    "\(intValue(job["tasks"]))",
                ] + TaskState.allCases.map { "\(intValue(counts[$0.rawValue]))" }
            })
    }
}

/// `farm job JOB`: counts, rate, ETA and failures of one job.
struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job", abstract: "Show one job: counts, rate, ETA, failures with reasons.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Argument(help: "The job's id.")
    var job: Int64

    @Flag(help: "Print JSON (its `counts` has one key per task state).")
    var json = false

    func run() throws {
        let value: Any
        if let client = try remote.client() {
            value = try client.json("GET", "jobs/\(job)")
        } else {
            guard let detail = try JobStore(connection: try database.connect()).jobDetail(job) else {
                throw ValidationError("job \(job) does not exist")
            }
            value = try jsonRoundTrip(detail)
        }
        if json { return try printJSON(value) }
        let object = value as? [String: Any] ?? [:]
        let counts = object["counts"] as? [String: Any] ?? [:]
        let left = intValue(counts["queued"]) + intValue(counts["running"])
        let rate = (object["tasks_per_second"] as? NSNumber)?.doubleValue ?? 0
        print("job \(job) \"\(object["name"] ?? "")\" (\(object["model"] ?? "")): \(object["state"] ?? "")")
        print("  " + TaskState.allCases.map { "\($0.rawValue) \(intValue(counts[$0.rawValue]))" }.joined(separator: ", "))
        if rate > 0 { print(String(format: "  %.2f tasks/s, about %.0f s to go", rate, Double(left) / rate)) }
        for failure in object["failures"] as? [[String: Any]] ?? [] {
            print("  failed ×\(intValue(failure["tasks"])): \(failure["reason"] ?? "")")
        }
    }
}

/// The job actions behind `farm cancel|pause|resume|retry JOB`.
enum JobControl {
    static func apply(_ action: String, job: Int64, database: DatabaseOptions, remote: RemoteOptions) throws {
        if let client = try remote.client() {
            let object = try client.json("POST", "jobs/\(job)/\(action)") as? [String: Any] ?? [:]
            if action == "retry" { print("requeued \(intValue(object["requeued"])) failed task(s)") }
            let counts = object["counts"] as? [String: Any] ?? [:]
            print("job \(job): " + TaskState.allCases.map { "\($0.rawValue)=\(intValue(counts[$0.rawValue]))" }.joined(separator: " "))
            return
        }
        let store = JobStore(connection: try database.connect())
        guard try store.jobExists(job) else {
            throw ValidationError("job \(job) does not exist")
        }
        switch action {
        case "cancel": try store.cancel(job: job)
        case "pause": try store.pause(job: job)
        case "resume": try store.resume(job: job)
        case "retry": print("requeued \(try store.retryFailed(job: job)) failed task(s)")
        default: throw ValidationError("unknown action \(action)")
        }
        let counts = try store.progress(job: job).counts
        print("job \(job): " + TaskState.allCases.map { "\($0.rawValue)=\(counts[$0, default: 0])" }.joined(separator: " "))
    }
}

/// One subcommand per job action, so that `farm cancel 7` reads as it should.
struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a job: its queued and running tasks stop.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("cancel", job: job, database: database, remote: remote) }
}

/// `farm pause JOB`.
struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pause a job: workers get none of its tasks until it resumes.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("pause", job: job, database: database, remote: remote) }
}

/// `farm resume JOB`.
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused job.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("resume", job: job, database: database, remote: remote) }
}

/// `farm retry JOB`.
struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Requeue a job's failed tasks with fresh attempts.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("retry", job: job, database: database, remote: remote) }
}
