/// A job's tasks counted by state; in JSON, one key per task state (`{"queued": 3, "running": 1, …}`).
public struct TaskCounts: Codable, Sendable, Equatable {
    /// Tasks waiting in the queue.
    public var queued: Int
    /// Tasks leased to a worker.
    public var running: Int
    /// Tasks finished with an image.
    public var done: Int
    /// Tasks failed for good.
    public var failed: Int
    /// Tasks cancelled before they finished.
    public var cancelled: Int

    /// The count of one state.
    public subscript(state: TaskState) -> Int {
        get {
            switch state {
            case .queued: return queued
            case .running: return running
            case .done: return done
            case .failed: return failed
            case .cancelled: return cancelled
            }
        }
        set {
            switch state {
            case .queued: queued = newValue
            case .running: running = newValue
            case .done: done = newValue
            case .failed: failed = newValue
            case .cancelled: cancelled = newValue
            }
        }
    }

    /// Tasks in all.
    public var total: Int { queued + running + done + failed + cancelled }

    /// Tasks that will still run (queued or running).
    public var open: Int { queued + running }

    /// The non-zero counts by state.
    public var byState: [TaskState: Int] {
        Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, self[$0]) }.filter { $0.1 > 0 })
    }

    /// `queued=3 running=1 done=7 failed=0 cancelled=0`, every state in order, as the CLI prints it.
    public var line: String {
        TaskState.allCases.map { "\($0.rawValue)=\(self[$0])" }.joined(separator: " ")
    }
}
