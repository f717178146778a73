import CoreMetrics
import FarmModel
import Foundation

/// The coordinator's own metrics, through swift-metrics: the `farm` binary bootstraps the
/// Prometheus backend and serves it at `/metrics`; without a backend these are no-ops.
/// Figures that live in the database (tasks by state, queue depth, workers by state) are
/// read when scraped, by the HTTP API.
struct CoordinatorMetrics {
    /// Seconds a task waited from becoming dispatchable to being leased.
    let dispatchLatency = CoreMetrics.Timer(label: "farm_dispatch_latency_seconds")
    /// A `SELECT 1` round trip to the database, once per sweep.
    let databaseRoundTrip = CoreMetrics.Timer(label: "farm_database_round_trip_seconds")
    /// Images stored (rate() of it is images per second).
    let images = Counter(label: "farm_images_total")
    /// Images per second over the last minute.
    let imagesPerSecond = Gauge(label: "farm_images_per_second")
    /// Leases that ran out before their worker reported.
    let leaseExpiries = Counter(label: "farm_lease_expiries_total")
    /// Workers connected to this coordinator now.
    let connectedWorkers = Gauge(label: "farm_connected_workers")
    /// Images stored per second of the clock, for the last minute's rate.
    private var recentImages: [Int: Int] = [:]

    /// Tasks sent back to the queue, by why.
    func requeued(_ count: Int, reason: String) {
        Counter(label: "farm_requeues_total", dimensions: [("reason", reason)]).increment(by: Int64(count))
    }

    /// ZeroMQ messages received from and sent to workers.
    var messages = MessageCounters(label: "farm_zmq_messages_total")

    /// A worker's latest rendering speed.
    func workerSpeed(_ worker: String, stepsPerSecond: Double) {
        Gauge(label: "farm_worker_steps_per_second", dimensions: [("worker", worker)]).record(stepsPerSecond)
    }

    /// A worker's latest model load time.
    func workerModelLoad(_ worker: String, seconds: Double) {
        Gauge(label: "farm_worker_model_load_seconds", dimensions: [("worker", worker)]).record(seconds)
    }

    /// Counts a stored image (the rate follows at the next sweep).
    mutating func imageStored(at now: Date = Date()) {
        images.increment()
        recentImages[Int(now.timeIntervalSince1970), default: 0] += 1
    }

    /// Sets the images-per-second gauge from the last minute (called each sweep, so it decays to 0).
    mutating func updateRate(_ now: Date = Date()) {
        let second = Int(now.timeIntervalSince1970)
        recentImages = recentImages.filter { second - $0.key < 60 }
        imagesPerSecond.record(Double(recentImages.values.reduce(0, +)) / 60)
    }
}
