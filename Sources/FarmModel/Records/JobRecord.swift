/// Where a job is in its life; the database holds the same names under a CHECK constraint.
public enum JobState: String, Codable, Sendable, CaseIterable {
    /// Its tasks are handed out.
    case active
    /// No new task of it is handed out until it resumes.
    case paused
    /// Cancelled by a user.
    case cancelled
    /// Every task has finished.
    case done
}

/// What a user may do to a job: the `farm cancel|pause|resume|retry JOB` commands and `POST /v1/jobs/{id}/{action}`.
public enum JobAction: String, Codable, Sendable, CaseIterable {
    /// Stop its queued and running tasks.
    case cancel
    /// Hand out none of its tasks until it resumes.
    case pause
    /// Hand out its tasks again.
    case resume
    /// Requeue its failed tasks with fresh attempts.
    case retry
}

/// One job with its counts: a row of `farm jobs --json` and `GET /v1/jobs`.
public struct JobRecord: Codable, Sendable, Equatable {
    /// The job's id.
    public var id: Int64
    /// Its name.
    public var name: String
    /// Whose it is: the owner of the token that submitted it (empty for jobs queued straight into the database).
    public var owner: String
    /// The model its tasks use by default.
    public var model: String
    /// Where it is in its life.
    public var state: JobState
    /// Higher runs first.
    public var priority: Int
    /// Tasks in all.
    public var tasks: Int
    /// Its tasks by state.
    public var counts: TaskCounts
    /// When it was submitted (PostgreSQL's text form).
    public var created: String

    /// Makes a record.
    public init(
        id: Int64, name: String, owner: String = "", model: String, state: JobState, priority: Int, tasks: Int, counts: TaskCounts,
        created: String
    ) {
        self.id = id
        self.name = name
        self.owner = owner
        self.model = model
        self.state = state
        self.priority = priority
        self.tasks = tasks
        self.counts = counts
        self.created = created
    }
}
