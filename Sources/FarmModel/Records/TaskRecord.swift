/// A running task and how far it got: a worker's `current` task in `GET /v1/workers`, and a line of `farm watch`.
public struct TaskRecord: Codable, Sendable, Equatable {
    /// The task's id.
    public var id: Int64
    /// The job it belongs to.
    public var job: Int64
    /// The worker that holds it; nil where the context says (a worker's own `current`), and then absent from JSON.
    public var worker: String?
    /// The last step reported.
    public var step: Int
    /// Steps in all.
    public var totalSteps: Int
    /// Steps per second lately; nil (JSON null) before the worker said.
    @NullWhenNil public var stepsPerSecond: Double?

    enum CodingKeys: String, CodingKey {
        case id = "task"
        case job, worker, step
        case totalSteps = "total_steps"
        case stepsPerSecond = "steps_per_second"
    }
}
