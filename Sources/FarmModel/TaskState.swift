/// Where a task is in its life; the database holds the same names under a CHECK constraint.
public enum TaskState: String, Codable, Sendable, CaseIterable {
    /// Waiting in the queue for a worker.
    case queued
    /// Leased to a worker, which is rendering it.
    case running
    /// Finished; its image is stored.
    case done
    /// Failed for good (bad input, or out of attempts).
    case failed
    /// Cancelled by a user before it finished.
    case cancelled

    /// True when the task will never run again.
    public var isTerminal: Bool {
        switch self {
        case .done, .failed, .cancelled: return true
        case .queued, .running: return false
        }
    }
}

/// Why a task failed: the input's fault (fail now) or the host's (retry elsewhere).
public enum FailureKind: String, Codable, Sendable {
    /// The parameters can never render (unknown model, bad size): do not retry.
    case input
    /// The host failed (crash, out of memory, lost): retry on another worker.
    case host
}
