import ArgumentParser
import FarmModel
import Foundation
import JobStore

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
            source = DatabaseWatchSource(store: JobStore(connection: try database.connect()), job: job)
        }
        let interactive = isatty(STDOUT_FILENO) == 1
        var previous = ""
        while true {
            let snapshot = try source.snapshot()
            if let job, snapshot.jobs.isEmpty { throw ValidationError("job \(job) does not exist") }
            var lines: [String] = []
            for row in snapshot.jobs {
                let counts = row.counts
                let settled = counts.done + counts.failed + counts.cancelled
                lines.append(
                    "job \(row.id) \(row.name) \(Watch.bar(settled, row.tasks)) \(counts.done)/\(row.tasks) done, \(counts.failed) failed, \(row.state.rawValue)"
                )
            }
            for row in snapshot.tasks {
                let speed = row.stepsPerSecond.map { String(format: ", %.2f it/s", $0) } ?? ""
                lines.append(
                    "  worker \(row.worker ?? ""): task \(row.id) \(Watch.bar(row.step, row.totalSteps, width: 16)) step \(row.step)/\(row.totalSteps)\(speed)"
                )
            }
            let screen = lines.joined(separator: "\n")
            if interactive {
                print("\u{1B}[H\u{1B}[2J" + screen)
            } else if screen != previous {
                print(screen)
            }
            previous = screen
            if job != nil && snapshot.jobs.allSatisfy({ $0.counts.open == 0 }) { return }
            Thread.sleep(forTimeInterval: interval)
        }
    }
}

/// What one frame of `farm watch` shows: jobs with their counts, and the running task of each worker.
struct WatchSnapshot {
    /// The jobs watched.
    var jobs: [JobRecord] = []
    /// Their running tasks, each with its worker.
    var tasks: [TaskRecord] = []
}

/// Where `farm watch` reads its frames from: the database or the HTTP API.
protocol WatchSource {
    /// The current state of the jobs being watched.
    func snapshot() throws -> WatchSnapshot
}

/// `farm watch` straight from the database: every running task, with its step.
struct DatabaseWatchSource: WatchSource {
    let store: JobStore
    let job: Int64?

    func snapshot() throws -> WatchSnapshot {
        WatchSnapshot(jobs: try store.watchedJobs(job), tasks: try store.runningTasks(job: job))
    }
}

/// `farm watch --server`: polls the HTTP API's job list and workers (each worker's current task).
struct RemoteWatchSource: WatchSource {
    let client: FarmClient
    let job: Int64?

    func snapshot() throws -> WatchSnapshot {
        var snapshot = WatchSnapshot()
        if let job {
            let detail: JobDetail
            do {
                detail = try client.json(JobDetail.self, "GET", "jobs/\(job)")
            } catch let error as RemoteError where error.status == 404 {
                return snapshot
            }
            snapshot.jobs = [
                JobRecord(
                    id: detail.id, name: detail.name, owner: detail.owner, model: detail.model, state: detail.state, priority: 0,
                    tasks: detail.counts.total,
                    counts: detail.counts, created: "")
            ]
        } else {
            snapshot.jobs = try client.json([JobRecord].self, "GET", "jobs").filter { [.active, .paused].contains($0.state) }
        }
        let watched = Set(snapshot.jobs.map(\.id))
        for worker in try client.json([WorkerRecord].self, "GET", "workers") {
            guard var current = worker.current, watched.contains(current.job) else { continue }
            current.worker = worker.name
            snapshot.tasks.append(current)
        }
        return snapshot
    }
}
