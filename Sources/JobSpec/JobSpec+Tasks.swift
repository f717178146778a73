import FarmModel
import Foundation

/// A job as already-expanded tasks in their wire form (`TaskParameters` JSON): what `farm submit --server` sends when
/// it has read a spec's input files itself and uploaded them, so that the tasks name stored images only.
public struct SubmittedTasks: Codable, Sendable {
    /// The job's name.
    public var name: String
    /// The job's model label.
    public var model: String
    /// Scheduling priority.
    public var priority: Int
    /// Attempts per task.
    public var maxAttempts: Int
    /// Seconds after the job finishes when its images, tasks and events are removed (nil: kept).
    public var expiresAfter: Double?
    /// Where the job's end is POSTed.
    public var notify: String?
    /// The tasks, in order.
    public var tasks: [TaskParameters]

    enum CodingKeys: String, CodingKey {
        case name, model, priority, tasks, notify
        case maxAttempts = "max_attempts"
        case expiresAfter = "expires_after"
    }
}

extension JobSpec {
    /// The spec as `SubmittedTasks` JSON (the `tasks` format of `POST /v1/jobs`).
    public func submittedTasks() throws -> Data {
        try JSONEncoder().encode(
            SubmittedTasks(
                name: name, model: model, priority: priority, maxAttempts: maxAttempts, expiresAfter: expiresAfter, notify: notify, tasks: tasks))
    }

    /// Reads `SubmittedTasks` JSON; every task is checked as a spec's are (inputs must be stored images).
    static func parseTasks(_ text: String, file: String) throws -> JobSpec {
        let submitted: SubmittedTasks
        do { submitted = try JSONDecoder().decode(SubmittedTasks.self, from: Data(text.utf8)) } catch {
            throw JobSpecError(file: file, line: nil, field: nil, message: "not a {name, model, priority, max_attempts, tasks} JSON object")
        }
        guard !submitted.tasks.isEmpty, submitted.tasks.count <= maxTasks else {
            throw JobSpecError(file: file, line: nil, field: "tasks", message: "a job has 1…\(maxTasks) tasks, got \(submitted.tasks.count)")
        }
        for (index, task) in submitted.tasks.enumerated() {
            do { try task.validate() } catch let failure as ValidationFailure {
                throw JobSpecError(file: file, line: nil, field: "tasks[\(index)].\(failure.field)", message: failure.message)
            }
        }
        var spec = JobSpec(name: submitted.name, model: submitted.model, tasks: submitted.tasks)
        spec.priority = submitted.priority
        spec.maxAttempts = submitted.maxAttempts
        if let seconds = submitted.expiresAfter {
            spec.expiresAfter = try jobField("expires_after", file: file, line: nil) { try RetentionPeriod.seconds(String(seconds), field: $0) }
        }
        if let url = submitted.notify {
            spec.notify = try jobField("notify", file: file, line: nil) { try NotifyURL.validated(url, field: $0) }
        }
        return spec
    }
}
