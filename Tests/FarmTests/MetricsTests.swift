import FarmModel
import Foundation
@_spi(Testing) import JobStore
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
    let coordinator = try FarmProcess(
        [
            "coordinator", "--insecure", "--database", conninfo, "--listen", endpoint,
            "--http", "127.0.0.1:\(port)", "--heartbeat", "0.2", "--missed-heartbeats", "10",
        ],
        name: "metrics-coordinator")
    let store = JobStore(connection: try Connection(conninfo))
    let synthetic = try store.enqueue(name: "metrics", model: "synthetic", tasks: syntheticTasks(40))
    let demo = try store.enqueue(
        name: "metrics-demo", model: "demo",
        tasks: [
            TaskParameters(
                prompt: "a small red circle at the top left on a blue background", model: "demo",
                width: 64, height: 64, steps: 3, seed: 1)
        ])
    // One lease runs out: a task held by a worker no coordinator knows (as a crashed coordinator
    // and worker leave it), so only the lease's end frees it.
    try store.testConnection.query(
        """
        UPDATE tasks SET state = 'running', attempt = 1, lease_owner = 'ghost', lease_expires = now() + interval '1 second'
        WHERE job_id = $1 AND index = 0
        """, [synthetic])
    // And one worker is lost. It runs alone until it holds a task: started beside a fast worker on a
    // loaded machine, it could join after the fast one had taken everything.
    let slow = try startSyntheticWorker(endpoint, name: "slow", delay: 1)
    #expect(try waitFor(60) { try taskInProgress(store, worker: "slow") != nil }, "\(slow.output)\n---\n\(coordinator.output)")
    slow.signal(SIGSTOP)
    let fast = try startSyntheticWorker(endpoint, name: "fast", delay: 0.05)
    let painter = try FarmProcess(
        ["worker", "--insecure", "--coordinator", endpoint, "--name", "painter", "--engine", "diffusion"],
        name: "painter")
    #expect(waitFor(30) { coordinator.output.contains("worker slow lost") }, "\(coordinator.output)")
    slow.crash()
    #expect(
        try waitFor(120) { try store.progress(job: synthetic).isFinished && store.progress(job: demo).isFinished },
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
    withExtendedLifetime((coordinator, slow, fast, painter)) {}
}

/// A worker with `--metrics` serves its own counts after a batch; daemons log JSON lines when their
/// output is not a terminal (or text with `--log-format text`), each task's lines carrying its task,
/// job, attempt and worker.
@Test func workerMetricsAndStructuredLogs() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let port = try TemporaryPostgres.freePort()
    let worker = try FarmProcess(
        [
            "worker", "--insecure", "--coordinator", endpoint, "--name", "counted", "--engine", "synthetic",
            "--synthetic-delay", "0.1", "--metrics", "127.0.0.1:\(port)", "--log-format", "text",
        ], name: "counted")
    let job = try store.enqueue(name: "logged", model: "synthetic", tasks: syntheticTasks(5))
    let tasks = Set(try store.testConnection.query("SELECT id FROM tasks WHERE job_id = $1", [job]).rows.map { try $0.decode("id", as: Int64.self) })
    #expect(try waitFor(60) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n---\n\(worker.output)")

    // The worker's metrics, once its last result is acknowledged.
    var samples: [String: Double] = [:]
    #expect(
        try waitFor(30) {
            samples = prometheusSamples(String(decoding: try httpRequest("GET", "http://127.0.0.1:\(port)/metrics").body, as: UTF8.self))
            return samples["farm_worker_unacknowledged_results"] == 0 && samples[#"farm_worker_tasks_total{outcome="done"}"#] == 5
        }, "\(samples)")
    #expect(samples["farm_worker_render_seconds_count"] == 5)
    #expect((samples["farm_worker_render_seconds_sum"] ?? 0) >= 5 * 0.1)
    #expect(samples[#"farm_worker_zmq_messages_total{direction="received",type="assign"}"#] == 5, "\(samples)")
    #expect((samples[#"farm_worker_zmq_messages_total{direction="sent",type="result"}"#] ?? 0) >= 5)
    #expect((samples[#"farm_worker_zmq_messages_total{direction="sent",type="heartbeat"}"#] ?? 0) > 0)
    #expect(samples["farm_worker_connected"] == 1 && samples["farm_worker_queued_tasks"] == 0)
    #expect((samples["farm_worker_steps_per_second"] ?? 0) > 0)
    #expect(try httpRequest("GET", "http://127.0.0.1:\(port)/v1/jobs").status == 404)

    // The coordinator's output is a file: every line is a JSON object, and each task's result line
    // names the task, its job, the attempt and the worker.
    let lines = coordinator.output.split(separator: "\n").map(String.init)
    let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    #expect(objects.count == lines.count && !lines.isEmpty, "not JSON lines:\n\(coordinator.output)")
    #expect(objects.allSatisfy { $0["time"] is String && $0["level"] is String && $0["label"] is String && $0["message"] is String })
    let results = objects.filter { $0["outcome"] as? String == "stored" }
    #expect(Set(results.compactMap { ($0["task"] as? NSNumber)?.int64Value }) == tasks, "\(coordinator.output)")
    #expect(
        results.allSatisfy {
            ($0["job"] as? NSNumber)?.int64Value == job && $0["attempt"] as? Int == 1 && $0["worker"] as? String == "counted"
                && $0["label"] as? String == "coordinator" && $0["level"] as? String == "info"
        })

    // The worker logs text, as asked: a rendering and a rendered line per task, with the same metadata.
    for task in tasks {
        let mine = worker.output.split(separator: "\n").filter { $0.contains(" task=\(task) ") || $0.hasSuffix(" task=\(task)") }
        #expect(
            mine.count == 2
                && mine.allSatisfy {
                    $0.contains(" info worker: ") && $0.contains("attempt=1 ") && $0.contains("job=\(job) ")
                        && $0.contains("worker=counted")
                }, "\(worker.output)")
    }

    // A metrics address the worker cannot use is a one-line error before it starts.
    let taken = try FarmProcess(
        ["worker", "--insecure", "--coordinator", endpoint, "--engine", "synthetic", "--metrics", "127.0.0.1:\(port)"],
        name: "taken")
    #expect(waitFor(30) { !taken.process.isRunning } && taken.process.terminationStatus == 1, "\(taken.output)")
    #expect(taken.output.contains("cannot listen on 127.0.0.1:\(port)"), "\(taken.output)")
    let bad = try runFarm(["worker", "--insecure", "--coordinator", endpoint, "--metrics", "nowhere"])
    #expect(bad.status == 2 && bad.stderr.contains("--metrics must be HOST:PORT"), "\(bad.status) \(bad.stderr)")
}
