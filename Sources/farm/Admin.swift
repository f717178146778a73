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

/// `farm tokens create|list|revoke`: API tokens for the coordinator's HTTP API.
struct Tokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API tokens for the HTTP API (only their SHA-256 is stored).",
        subcommands: [TokensCreate.self, TokensList.self, TokensRevoke.self])
}

/// `farm tokens create --role admin|submit [--name N]`: prints only the token.
struct TokensCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Make a token and print it (shown once).")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Option(help: "submit (queue jobs, read jobs and images) or admin (everything).") var role: String
    @Option(help: "A label for the token.") var name = ""

    func validate() throws {
        guard TokenRole(rawValue: role) != nil else { throw ValidationError("--role must be submit or admin, got \(role)") }
    }

    func run() throws {
        // The first admin token can only come from the database; later ones also from an admin over HTTP.
        if database.database == nil, let client = try remote.client() {
            let body = try JSONSerialization.data(withJSONObject: ["role": role, "name": name])
            let created = try client.json("POST", "tokens", body: body) as? [String: Any]
            guard let token = created?["token"] as? String else { throw RemoteError(message: "the server's answer has no token") }
            return print(token)
        }
        let connection = try database.connect()
        try Migrator(folder: Migrator.locateFolder()).apply(to: connection)
        print(try JobStore(connection: connection).createToken(role: TokenRole(rawValue: role)!, name: name).token)
    }
}

/// `farm tokens list`: ids, roles, names and dates, never secrets.
struct TokensList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (no secrets).")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let value: Any
        if let client = try remote.client() {
            value = try client.json("GET", "tokens")
        } else {
            value = try jsonRoundTrip(try JobStore(connection: try database.connect()).tokens().map(\.summary))
        }
        if json { return try printJSON(value) }
        printTable(
            ["ID", "ROLE", "NAME", "CREATED", "REVOKED"],
            (value as? [[String: Any]] ?? []).map { token in
                [
                    "\(intValue(token["id"]))", "\(token["role"] ?? "")", "\(token["name"] ?? "")", "\(token["created"] ?? "")",
                    (token["revoked"] as? String) ?? "-",
                ]
            })
    }
}

/// `farm tokens revoke ID`.
struct TokensRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by its id.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The token's id (farm tokens list).") var id: Int64

    func run() throws {
        if let client = try remote.client() {
            _ = try client.json("POST", "tokens/\(id)/revoke")
            return print("token \(id) revoked")
        }
        guard try JobStore(connection: try database.connect()).revokeToken(id: id) else {
            throw ValidationError("no unrevoked token has id \(id)")
        }
        print("token \(id) revoked")
    }
}

/// `farm watch [JOB]`: live progress per job and per worker.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow progress live: bars per job and per worker on a terminal, plain lines when piped; with JOB, until it finishes.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

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
        let source: WatchSource
        if let client = try remote.client() {
            source = RemoteWatchSource(client: client, job: job)
        } else {
            source = DatabaseWatchSource(connection: try database.connect(), job: job)
        }
        let interactive = isatty(STDOUT_FILENO) == 1
        var previous = ""
        while true {
            let snapshot = try source.snapshot()
            if let job, snapshot.jobs.isEmpty { throw ValidationError("job \(job) does not exist") }
            var lines: [String] = []
            for row in snapshot.jobs {
                let settled = row.done + row.failed + row.cancelled
                lines.append(
                    "job \(row.id) \(row.name) \(Watch.bar(settled, row.total)) \(row.done)/\(row.total) done, \(row.failed) failed, \(row.state)")
            }
            for row in snapshot.tasks {
                let speed = row.speed.map { String(format: ", %.2f it/s", $0) } ?? ""
                lines.append(
                    "  worker \(row.worker): task \(row.task) \(Watch.bar(row.step, row.total, width: 16)) step \(row.step)/\(row.total)\(speed)")
            }
            let screen = lines.joined(separator: "\n")
            if interactive {
                print("\u{1B}[H\u{1B}[2J" + screen)
            } else if screen != previous {
                print(screen)
            }
            previous = screen
            if job != nil && snapshot.jobs.allSatisfy({ $0.open == 0 }) { return }
            Thread.sleep(forTimeInterval: interval)
        }
    }
}

/// What one frame of `farm watch` shows: jobs with their counts, and the running task of each worker.
struct WatchSnapshot {
    /// A job's line.
    struct JobRow {
        var id: Int64, name: String, state: String
        var total: Int, open: Int, done: Int, failed: Int, cancelled: Int
    }
    /// A worker's running task.
    struct TaskRow {
        var worker: String, task: Int64, step: Int, total: Int, speed: Double?
    }
    var jobs: [JobRow] = []
    var tasks: [TaskRow] = []
}

/// Where `farm watch` reads its frames from: the database or the HTTP API.
protocol WatchSource {
    /// The current state of the jobs being watched.
    func snapshot() throws -> WatchSnapshot
}

/// `farm watch` straight from the database: every running task, with its step.
struct DatabaseWatchSource: WatchSource {
    let connection: Connection
    let job: Int64?

    func snapshot() throws -> WatchSnapshot {
        var snapshot = WatchSnapshot()
        for row in try connection.query(
            """
            SELECT id, name, state, task_count, queued_count, running_count, done_count, failed_count, cancelled_count
            FROM jobs WHERE ($1::bigint IS NULL AND state IN ('active', 'paused')) OR id = $1 ORDER BY id
            """, [job]
        ).rows {
            snapshot.jobs.append(
                .init(
                    id: try row.decode("id"), name: try row.decode("name"), state: try row.decode("state"), total: try row.decode("task_count"),
                    open: try row.decode("queued_count", as: Int.self) + row.decode("running_count", as: Int.self),
                    done: try row.decode("done_count"), failed: try row.decode("failed_count"), cancelled: try row.decode("cancelled_count")))
        }
        for row in try connection.query(
            """
            SELECT lease_owner, id, step, total_steps, steps_per_second::text AS speed FROM tasks
            WHERE state = 'running' AND ($1::bigint IS NULL OR job_id = $1) ORDER BY lease_owner, id
            """, [job]
        ).rows {
            snapshot.tasks.append(
                .init(
                    worker: try row.decode("lease_owner"), task: try row.decode("id"), step: try row.decode("step"),
                    total: try row.decode("total_steps"), speed: Double(try row.decodeIfPresent("speed", as: String.self) ?? "")))
        }
        return snapshot
    }
}

/// `farm watch --server`: polls the HTTP API's job list and workers (each worker's current task).
struct RemoteWatchSource: WatchSource {
    let client: FarmClient
    let job: Int64?

    func snapshot() throws -> WatchSnapshot {
        var snapshot = WatchSnapshot()
        let jobs: [[String: Any]]
        if let job {
            do {
                jobs = [try client.json("GET", "jobs/\(job)") as? [String: Any] ?? [:]]
            } catch let error as RemoteError where error.status == 404 {
                return snapshot
            }
        } else {
            jobs = (try client.json("GET", "jobs") as? [[String: Any]] ?? []).filter { ["active", "paused"].contains("\($0["state"] ?? "")") }
        }
        for object in jobs {
            let counts = object["counts"] as? [String: Any] ?? [:]
            snapshot.jobs.append(
                .init(
                    id: Int64(intValue(object["id"])), name: "\(object["name"] ?? "")", state: "\(object["state"] ?? "")",
                    total: counts.values.reduce(0) { $0 + intValue($1) }, open: intValue(counts["queued"]) + intValue(counts["running"]),
                    done: intValue(counts["done"]), failed: intValue(counts["failed"]), cancelled: intValue(counts["cancelled"])))
        }
        let watched = Set(snapshot.jobs.map(\.id))
        for worker in try client.json("GET", "workers") as? [[String: Any]] ?? [] {
            guard let current = worker["current"] as? [String: Any], watched.contains(Int64(intValue(current["job"]))) else { continue }
            snapshot.tasks.append(
                .init(
                    worker: "\(worker["name"] ?? "")", task: Int64(intValue(current["task"])),
                    step: intValue(current["step"]), total: intValue(current["total_steps"]),
                    speed: (current["steps_per_second"] as? NSNumber)?.doubleValue))
        }
        return snapshot
    }
}
