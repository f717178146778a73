import CoreMetrics
import FarmModel
import Foundation

/// A worker's own metrics, through swift-metrics: `farm worker --metrics HOST:PORT` bootstraps
/// the Prometheus backend and serves them; without a backend these are no-ops.
struct WorkerMetrics {
    /// Seconds each render took, from start to its image or failure.
    let renderTime = CoreMetrics.Timer(label: "farm_worker_render_seconds")
    /// The latest render's steps per second.
    let stepsPerSecond = Gauge(label: "farm_worker_steps_per_second")
    /// How long the latest model load took.
    let modelLoad = Gauge(label: "farm_worker_model_load_seconds")
    /// Tasks assigned and not yet finished (the one rendering included).
    let queued = Gauge(label: "farm_worker_queued_tasks")
    /// Results and failures sent but not yet acknowledged by a coordinator.
    let unacknowledged = Gauge(label: "farm_worker_unacknowledged_results")
    /// 1 while a coordinator has welcomed this worker, 0 while it looks for one.
    let connected = Gauge(label: "farm_worker_connected")
    private var outcomes: [String: Counter] = [:]
    /// ZeroMQ messages received from and sent to coordinators.
    var messages = MessageCounters(label: "farm_worker_zmq_messages_total")

    /// A finished render: `done`, `failed` or `cancelled`.
    mutating func finished(_ outcome: String) {
        if outcomes[outcome] == nil { outcomes[outcome] = Counter(label: "farm_worker_tasks_total", dimensions: [("outcome", outcome)]) }
        outcomes[outcome]!.increment()
    }
}
