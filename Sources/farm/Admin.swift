import ArgumentParser
import FarmModel
import Foundation
import JobStore

/// Prints `value` as JSON (sorted keys, indented) for scripts.
func printJSON<Value: Encodable>(_ value: Value) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
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

    @Option(help: "Only this owner's jobs (an admin's filter; a submit token sees only its owner's anyway).")
    var owner: String?

    func run() throws {
        let jobs: [JobRecord]
        if let client = try remote.client() {
            jobs = try client.json([JobRecord].self, "GET", "jobs", query: owner.map { [URLQueryItem(name: "owner", value: $0)] } ?? [])
        } else {
            jobs = try JobStore(connection: try database.connect()).jobs(owner: owner)
        }
        if json { return try printJSON(jobs) }
        printTable(
            ["ID", "NAME", "MODEL", "STATE", "TASKS", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"],
            jobs.map { job in
                ["\(job.id)", job.name, job.model, job.state.rawValue, "\(job.tasks)"] + TaskState.allCases.map { "\(job.counts[$0])" }
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

    @Option(help: "Change the job's priority (higher runs first), then show it.")
    var priority: Int?

    func run() throws {
        let detail: JobDetail
        if let priority {
            detail = try setPriority(priority)
        } else {
            detail = try remote.ask(JobDetail.self, "jobs/\(job)", database: database, missing: "job \(job) does not exist") {
                try $0.jobDetail(job)
            }
        }
        if json { return try printJSON(detail) }
        let counts = detail.counts
        let rate = detail.tasksPerSecond
        print("job \(job) \"\(detail.name)\" (\(detail.model)): \(detail.state.rawValue)")
        print("  " + TaskState.allCases.map { "\($0.rawValue) \(counts[$0])" }.joined(separator: ", "))
        if rate > 0 { print(String(format: "  %.2f tasks/s, about %.0f s to go", rate, Double(counts.open) / rate)) }
        if let pruned = detail.pruned { print("  pruned at \(pruned): its tasks, images and events were removed") }
        for failure in detail.failures {
            print("  failed ×\(failure.tasks): \(failure.reason)")
        }
    }
}

extension JobCommand {
    /// Sets the job's priority through the HTTP API or the database and returns the job after it.
    func setPriority(_ priority: Int) throws -> JobDetail {
        if let client = try remote.client() {
            let body = try JSONEncoder().encode(["priority": priority])
            return try client.json(JobDetail.self, "POST", "jobs/\(job)/priority", body: body)
        }
        let store = JobStore(connection: try database.connect())
        do {
            guard try store.setPriority(job: job, priority: priority), let detail = try store.jobDetail(job) else {
                throw ValidationError("job \(job) does not exist")
            }
            return detail
        } catch let failure as ValidationFailure {
            throw ValidationError(failure.description)
        }
    }
}

/// The job a `farm cancel|pause|resume|retry JOB` command acts on, and how it reaches it.
struct JobControl: ActionTarget {
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The job's id.") var job: Int64

    /// Applies `action` to the job through the HTTP API or the database, and prints the job's counts after it.
    func apply(_ action: JobAction) throws {
        let reply = try remote.ask(
            JobActionReply.self, "jobs/\(job)/\(action.rawValue)", method: "POST", database: database, missing: "job \(job) does not exist"
        ) { try $0.perform(action, job: job) }
        if action == .retry { print("requeued \(reply.requeued ?? 0) failed task(s)") }
        print("job \(job): " + reply.counts.line)
    }
}

/// One subcommand per job action, so that `farm cancel 7` reads as it should.
struct Cancel: ActionCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a job: its queued and running tasks stop.")
    static let action = JobAction.cancel
    @OptionGroup var target: JobControl
}

/// `farm pause JOB`.
struct Pause: ActionCommand {
    static let configuration = CommandConfiguration(abstract: "Pause a job: workers get none of its tasks until it resumes.")
    static let action = JobAction.pause
    @OptionGroup var target: JobControl
}

/// `farm resume JOB`.
struct Resume: ActionCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused job.")
    static let action = JobAction.resume
    @OptionGroup var target: JobControl
}

/// `farm retry JOB`.
struct Retry: ActionCommand {
    static let configuration = CommandConfiguration(abstract: "Requeue a job's failed tasks with fresh attempts.")
    static let action = JobAction.retry
    @OptionGroup var target: JobControl
}
