import FarmModel
import Foundation
import JobStore
import Postgres
import TestSupport
import Testing

/// Prometheus samples of a `/metrics` page by series (`name{label="value",…}` as printed).
func prometheusSamples(_ text: String) -> [String: Double] {
    var samples: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        samples[String(line[..<space])] = value
    }
    return samples
}

/// After a batch with a lost worker and an expired lease (41 tasks, one of them on the demo model), `curl /metrics` on the coordinator
/// shows every metric with the values the batch implies.
@Test func metricsShowTheBatch() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let port = try TemporaryPostgres.freePort()
    let coordinator = try FarmProcess(["coordinator", "--insecure", "--database", conninfo, "--listen", endpoint,
                                       "--http", "127.0.0.1:\(port)", "--heartbeat", "0.2", "--missed-heartbeats", "10"],
                                      name: "metrics-coordinator")
    let store = JobStore(connection: try Connection(conninfo))
    let synthetic = try store.enqueue(name: "metrics", model: "synthetic", tasks: syntheticTasks(40))
    let demo = try store.enqueue(name: "metrics-demo", model: "demo", tasks: [
        TaskParameters(prompt: "a small red circle at the top left on a blue background", model: "demo",
                       width: 64, height: 64, steps: 3, seed: 1)])
    // One lease runs out: a task held by a worker no coordinator knows (as a crashed coordinator
    // and worker leave it), so only the lease's end frees it.
    try store.connection.query("""
        UPDATE tasks SET state = 'running', attempt = 1, lease_owner = 'ghost', lease_expires = now() + interval '1 second'
        WHERE job_id = $1 AND index = 0
        """, [synthetic])
    // And one worker is lost. It runs alone until it holds a task: started beside a fast worker on a
    // loaded machine, it could join after the fast one had taken everything.
    let slow = try startSyntheticWorker(endpoint, name: "slow", delay: 1)
    #expect(try waitFor(60) { try taskInProgress(store, worker: "slow") != nil }, "\(slow.output)")
    slow.signal(SIGSTOP)
    let fast = try startSyntheticWorker(endpoint, name: "fast", delay: 0.05)
    let painter = try FarmProcess(["worker", "--insecure", "--coordinator", endpoint, "--name", "painter", "--engine", "diffusion"],
                                  name: "painter")
    #expect(waitFor(30) { coordinator.output.contains("worker slow lost") }, "\(coordinator.output)")
    slow.crash()
    #expect(try waitFor(120) { try store.progress(job: synthetic).isFinished && store.progress(job: demo).isFinished },
            "\(coordinator.output)\n---\n\(painter.output)")

    let page = try httpRequest("GET", "http://127.0.0.1:\(port)/metrics")
    #expect(page.status == 200 && page.contentType.hasPrefix("text/plain"))
    let text = String(decoding: page.body, as: UTF8.self)
    let samples = prometheusSamples(text)
    func value(_ series: String) -> Double? { samples[series] }
    // Tasks by state and queue depth per model, read from the database at scrape time.
    #expect(value(#"farm_tasks{state="done"}"#) == 41, "\(text)")
    #expect(value(#"farm_tasks{state="queued"}"#) == 0 && value(#"farm_tasks{state="running"}"#) == 0)
    #expect(value(#"farm_queue_depth{model="synthetic"}"#) == 0 && value(#"farm_queue_depth{model="demo"}"#) == 0)
    // Workers by state: the lost one and the two still online.
    #expect(value(#"farm_workers{state="lost"}"#) == 1 && value(#"farm_workers{state="online"}"#) == 2, "\(text)")
    #expect(value("farm_connected_workers") == 2)
    // Every task was leased at least once, each with a dispatch latency.
    #expect((value("farm_dispatch_latency_seconds_count") ?? 0) >= 41)
    #expect((value("farm_dispatch_latency_seconds_sum") ?? -1) >= 0)
    // Images: one per task; the rate over the last minute is positive.
    #expect(value("farm_images_total") == 41)
    #expect((value("farm_images_per_second") ?? 0) > 0)
    // The expired lease and the lost worker's task, requeued.
    #expect(value("farm_lease_expiries_total") == 1, "\(text)")
    #expect(value(#"farm_requeues_total{reason="lease_expired"}"#) == 1)
    #expect((value(#"farm_requeues_total{reason="worker_lost"}"#) ?? 0) >= 1)
    // Database round trips, one per sweep, well under a second here.
    #expect((value("farm_database_round_trip_seconds_count") ?? 0) > 0)
    let trips = (value("farm_database_round_trip_seconds_sum") ?? 99) / (value("farm_database_round_trip_seconds_count") ?? 1)
    #expect(trips < 0.5, "mean database round trip \(trips) s")
    // ZeroMQ traffic by message type.
    #expect((value(#"farm_zmq_messages_total{direction="received",type="result"}"#) ?? 0) >= 41, "\(text)")
    #expect((value(#"farm_zmq_messages_total{direction="sent",type="assign"}"#) ?? 0) >= 41)
    #expect((value(#"farm_zmq_messages_total{direction="received",type="heartbeat"}"#) ?? 0) > 0)
    // Per-worker speed and the diffusion worker's model load time.
    #expect((value(#"farm_worker_steps_per_second{worker="painter"}"#) ?? 0) > 0, "\(text)")
    let load = value(#"farm_worker_model_load_seconds{worker="painter"}"#) ?? -1
    #expect(load > 0 && load < 60, "\(text)")
    withExtendedLifetime((coordinator, fast, painter)) {}
}
