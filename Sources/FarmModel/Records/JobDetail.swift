/// One job's counts, rate, ETA and failures: `farm job JOB --json` and `GET /v1/jobs/{id}`.
public struct JobDetail: Codable, Sendable, Equatable {
    /// Failed tasks that share one reason.
    public struct FailureGroup: Codable, Sendable, Equatable {
        /// The error message.
        public var reason: String
        /// How many tasks failed with it.
        public var tasks: Int

    }

    /// The job's id.
    public var id: Int64
    /// Its name.
    public var name: String
    /// Whose it is (see `JobRecord.owner`).
    public var owner: String
    /// Tasks in all.
    public var tasks: Int
    /// Where it is in its life.
    public var state: JobState
    /// The model its tasks use by default.
    public var model: String
    /// Its tasks by state.
    public var counts: TaskCounts
    /// Finished tasks per second of rendering so far (0 before the first).
    public var tasksPerSecond: Double
    /// Seconds to go at that rate; nil (JSON null) while the rate is unknown.
    @NullWhenNil public var etaSeconds: Double?
    /// The most common failure reasons, most common first (at most 10).
    public var failures: [FailureGroup]
    /// Seconds after it finishes that retention may remove its tasks, images and events; nil: only `farm prune` does.
    public var expiresAfter: Double?
    /// Where its end is POSTed; nil: nowhere.
    public var notify: String?
    /// When retention removed its tasks, images and events (PostgreSQL's text form); nil: not yet.
    public var pruned: String?

    enum CodingKeys: String, CodingKey {
        case id, name, owner, tasks, state, model, counts, failures
        case tasksPerSecond = "tasks_per_second"
        case etaSeconds = "eta_seconds"
        case expiresAfter = "expires_after"
        case notify, pruned
    }
}
