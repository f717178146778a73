/// A worker's state in the registry; the database holds the same names under a CHECK constraint.
/// `online`, `draining` and `cordoned` are set by operators; `lost` and `offline` by the coordinator.
public enum WorkerStatus: String, Codable, Sendable, CaseIterable {
    /// Connected and taking work.
    case online
    /// Finishing what it holds, taking no more, then exiting.
    case draining
    /// Connected but taking no new work.
    case cordoned
    /// Missed its heartbeats; its tasks went back to the queue.
    case lost
    /// Said goodbye.
    case offline

    /// The states an operator may set (`farm drain|cordon|uncordon`).
    public var isOperatorState: Bool { self == .online || self == .draining || self == .cordoned }
}

/// What an operator may do to a worker: `farm drain|cordon|uncordon WORKER` and `POST /v1/workers/{name}/{action}`.
public enum OperatorAction: String, Codable, Sendable, CaseIterable {
    /// Finish what it holds, take no more, and exit.
    case drain
    /// Stay connected but take no new tasks.
    case cordon
    /// Take work again.
    case uncordon

    /// The registry state the action sets.
    public var status: WorkerStatus {
        switch self {
        case .drain: return .draining
        case .cordon: return .cordoned
        case .uncordon: return .online
        }
    }
}

/// One worker in the registry with its live columns: a row of `farm workers --json` and `GET /v1/workers`.
public struct WorkerRecord: Codable, Sendable, Equatable {
    /// The worker's name (its id).
    public var name: String
    /// The host it runs on.
    public var host: String
    /// Its state in the registry.
    public var state: WorkerStatus
    /// The models it can load, comma-separated.
    public var models: String
    /// Tasks it renders at once.
    public var slots: Int
    /// Its device, in words.
    public var device: String
    /// The model it holds now ("" when none).
    public var loadedModel: String
    /// Seconds since its last heartbeat, to a tenth.
    public var secondsSinceHeartbeat: Double
    /// Host failures charged to it across jobs.
    public var failures: Int
    /// Tasks it is rendering now.
    public var running: Int
    /// Its first running task, standing for its current one; nil (absent from JSON) when it renders none.
    public var current: TaskRecord?

    enum CodingKeys: String, CodingKey {
        case name, host, state, models, slots, device, failures, running, current
        case loadedModel = "loaded_model"
        case secondsSinceHeartbeat = "seconds_since_heartbeat"
    }
}
