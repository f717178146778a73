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

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let rows = try database.connect().query("""
            SELECT id, name, model, state, priority, task_count, queued_count, running_count, done_count, failed_count,
                   cancelled_count, created_at::text AS created FROM jobs ORDER BY id
            """).rows
        let jobs = try rows.map { row -> [String: Any] in
            ["id": try row.decode("id", as: Int64.self), "name": try row.decode("name", as: String.self),
             "model": try row.decode("model", as: String.self), "state": try row.decode("state", as: String.self),
             "priority": try row.decode("priority", as: Int.self), "tasks": try row.decode("task_count", as: Int.self),
             "counts": try JobCommand.counts(row), "created": try row.decode("created", as: String.self)]
        }
        if json { return try printJSON(jobs) }
        printTable(["ID", "NAME", "MODEL", "STATE", "TASKS", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED"], jobs.map { job in
            let counts = job["counts"] as! [String: Int]
            return ["\(job["id"]!)", "\(job["name"]!)", "\(job["model"]!)", "\(job["state"]!)", "\(job["tasks"]!)"]
                + TaskState.allCases.map { "\(counts[$0.rawValue] ?? 0)" }
        })
    }
}

/// `farm job JOB`: counts, rate, ETA and failures of one job.
struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "job", abstract: "Show one job: counts, rate, ETA, failures with reasons.")

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "The job's id.")
    var job: Int64

    @Flag(help: "Print JSON (its `counts` has one key per task state).")
    var json = false

    static func counts(_ row: Row) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for state in TaskState.allCases { counts[state.rawValue] = try row.decode("\(state.rawValue)_count") }
        return counts
    }

    func run() throws {
        let connection = try database.connect()
        guard let row = try connection.query("""
            SELECT j.*, extract(epoch FROM now() - j.created_at) AS age,
                   (SELECT extract(epoch FROM max(t.finished_at) - min(t.started_at)) FROM tasks t
                    WHERE t.job_id = j.id AND t.state = 'done') AS busy
            FROM jobs j WHERE j.id = $1
            """, [job]).rows.first else {
            throw ValidationError("job \(job) does not exist")
        }
        let counts = try JobCommand.counts(row)
        let done = counts["done"] ?? 0, left = (counts["queued"] ?? 0) + (counts["running"] ?? 0)
        let busy = try row.decodeIfPresent("busy", as: Double.self) ?? 0
        let rate = busy > 0 ? Double(done) / busy : 0
        let failures = try connection.query("""
            SELECT error_message, count(*) AS n FROM tasks WHERE job_id = $1 AND state = 'failed'
            GROUP BY error_message ORDER BY n DESC LIMIT 10
            """, [job]).rows.map { ["reason": try $0.text("error_message") ?? "", "tasks": try $0.decode("n", as: Int.self)] as [String: Any] }
        let object: [String: Any] = [
            "id": job, "name": try row.decode("name", as: String.self), "state": try row.decode("state", as: String.self),
            "model": try row.decode("model", as: String.self), "counts": counts, "tasks_per_second": rate,
            "eta_seconds": rate > 0 ? Double(left) / rate : NSNull(), "failures": failures,
        ]
        if json { return try printJSON(object) }
        print("job \(job) \"\(object["name"]!)\" (\(object["model"]!)): \(object["state"]!)")
        print("  " + TaskState.allCases.map { "\($0.rawValue) \(counts[$0.rawValue] ?? 0)" }.joined(separator: ", "))
        if rate > 0 { print(String(format: "  %.2f tasks/s, about %.0f s to go", rate, Double(left) / rate)) }
        for failure in failures { print("  failed ×\(failure["tasks"]!): \(failure["reason"]!)") }
    }
}

/// The job actions behind `farm cancel|pause|resume|retry JOB`.
enum JobControl {
    static func apply(_ action: String, job: Int64, database: DatabaseOptions) throws {
        let store = JobStore(connection: try database.connect())
        guard try store.connection.query("SELECT 1 FROM jobs WHERE id = $1", [job]).rows.count == 1 else {
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
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("cancel", job: job, database: database) }
}

/// `farm pause JOB`.
struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pause a job: workers get none of its tasks until it resumes.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("pause", job: job, database: database) }
}

/// `farm resume JOB`.
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused job.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("resume", job: job, database: database) }
}

/// `farm retry JOB`.
struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Requeue a job's failed tasks with fresh attempts.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The job's id.") var job: Int64
    func run() throws { try JobControl.apply("retry", job: job, database: database) }
}

/// `farm workers`: the registry.
struct Workers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List workers: name, host, state, models, slots, last heartbeat, failures.")

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let rows = try database.connect().query("""
            SELECT w.id, w.host, w.state, array_to_string(w.models, ',') AS models, w.slots,
                   round(extract(epoch FROM now() - w.last_heartbeat)::numeric, 1)::text AS silent,
                   (SELECT coalesce(sum(f.failures), 0) FROM job_worker_failures f WHERE f.worker_id = w.id) AS failures,
                   (SELECT count(*) FROM tasks t WHERE t.lease_owner = w.id AND t.state = 'running') AS running
            FROM workers w ORDER BY w.id
            """).rows
        let workers = try rows.map { row -> [String: Any] in
            ["name": try row.decode("id", as: String.self), "host": try row.decode("host", as: String.self),
             "state": try row.decode("state", as: String.self), "models": try row.decode("models", as: String.self),
             "slots": try row.decode("slots", as: Int.self), "seconds_since_heartbeat": Double(try row.decode("silent", as: String.self)) ?? 0,
             "failures": try row.decode("failures", as: Int.self), "running": try row.decode("running", as: Int.self)]
        }
        if json { return try printJSON(workers) }
        printTable(["NAME", "HOST", "STATE", "MODELS", "SLOTS", "RUNNING", "LAST HEARTBEAT", "FAILURES"], workers.map { worker in
            ["\(worker["name"]!)", "\(worker["host"]!)", "\(worker["state"]!)", "\(worker["models"]!)", "\(worker["slots"]!)",
             "\(worker["running"]!)", "\(worker["seconds_since_heartbeat"]!) s ago", "\(worker["failures"]!)"]
        })
    }
}

/// `farm drain|cordon|uncordon WORKER`.
enum WorkerControl {
    static func apply(_ state: String, worker: String, database: DatabaseOptions) throws {
        guard try JobStore(connection: try database.connect()).setWorkerState(worker, state) else {
            throw ValidationError("worker \(worker) is not known to the farm")
        }
        print("worker \(worker): \(state)")
    }
}

/// `farm drain WORKER`.
struct Drain: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drain a worker: it finishes what it holds, takes no more, and exits.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply("draining", worker: worker, database: database) }
}

/// `farm cordon WORKER`.
struct Cordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cordon a worker: it stays connected but gets no new tasks.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply("cordoned", worker: worker, database: database) }
}

/// `farm uncordon WORKER`.
struct Uncordon: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Give a cordoned or drained worker work again.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The worker's name.") var worker: String
    func run() throws { try WorkerControl.apply("online", worker: worker, database: database) }
}

/// `farm watch [JOB]`: live progress per job and per worker.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow progress live: bars per job and per worker on a terminal, plain lines when piped; with JOB, until it finishes.")

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "Follow only this job, and stop when it is finished.")
    var job: Int64?

    @Option(help: "Seconds between updates.")
    var interval: Double = 0.5

    func validate() throws {
        guard interval >= 0.05 && interval <= 60 else { throw ValidationError("--interval must be 0.05...60 seconds") }
    }

    static func bar(_ done: Int, _ total: Int, width: Int = 24) -> String {
        let filled = total > 0 ? width * done / total : 0
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
    }

    func run() throws {
        let connection = try database.connect()
        let interactive = isatty(STDOUT_FILENO) == 1
        var previous = ""
        while true {
            let jobs = try connection.query("""
                SELECT id, name, state, task_count, queued_count, running_count, done_count, failed_count, cancelled_count
                FROM jobs WHERE ($1::bigint IS NULL AND state IN ('active', 'paused')) OR id = $1 ORDER BY id
                """, [job]).rows
            if let job, jobs.isEmpty { throw ValidationError("job \(job) does not exist") }
            var lines: [String] = []
            var finished = true
            for row in jobs {
                let total: Int = try row.decode("task_count"), done: Int = try row.decode("done_count")
                let failed: Int = try row.decode("failed_count"), cancelled: Int = try row.decode("cancelled_count")
                let open = try row.decode("queued_count", as: Int.self) + row.decode("running_count", as: Int.self)
                if open > 0 { finished = false }
                lines.append("job \(try row.decode("id", as: Int64.self)) \(try row.decode("name", as: String.self)) \(Watch.bar(done + failed + cancelled, total)) \(done)/\(total) done, \(failed) failed, \(try row.decode("state", as: String.self))")
            }
            let tasks = try connection.query("""
                SELECT lease_owner, id, step, total_steps FROM tasks
                WHERE state = 'running' AND ($1::bigint IS NULL OR job_id = $1) ORDER BY lease_owner, id
                """, [job]).rows
            for row in tasks {
                let step: Int = try row.decode("step"), total: Int = try row.decode("total_steps")
                lines.append("  worker \(try row.decode("lease_owner", as: String.self)): task \(try row.decode("id", as: Int64.self)) \(Watch.bar(step, total, width: 16)) step \(step)/\(total)")
            }
            let screen = lines.joined(separator: "\n")
            if interactive {
                print("\u{1B}[H\u{1B}[2J" + screen)
            } else if screen != previous {
                print(screen)
            }
            previous = screen
            if job != nil && finished { return }
            Thread.sleep(forTimeInterval: interval)
        }
    }
}
