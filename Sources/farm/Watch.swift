import ArgumentParser
import FarmModel
import Foundation
import JobStore
import Postgres

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
