import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing
import ZeroMQ

/// The stress run's size, from the environment: the test command runs the short mode
/// (about two minutes); `FARM_STRESS_SECONDS=600 FARM_STRESS_WORKERS=200 FARM_STRESS_TASKS=10000`
/// is the long mode (README, "Stress suite").
struct StressSettings {
    var seconds = 60.0
    var workers = 12
    var tasks = 300
    var seed: UInt64 = 2026
    /// The run goes on past `seconds` until at least this many faults were injected.
    var faults = 55

    init(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let value = environment["FARM_STRESS_SECONDS"].flatMap(Double.init) { seconds = value }
        if let value = environment["FARM_STRESS_WORKERS"].flatMap(Int.init) { workers = max(2, value) }
        if let value = environment["FARM_STRESS_TASKS"].flatMap(Int.init) { tasks = max(1, value) }
        if let value = environment["FARM_STRESS_SEED"].flatMap(UInt64.init) { seed = value }
        if let value = environment["FARM_STRESS_FAULTS"].flatMap(Int.init) { faults = value }
    }
}

/// The faults a stress run injects, one every `seconds / 100` or so, chosen at random.
enum Fault: String, CaseIterable {
    case killWorker = "kill -9 worker"
    case pauseWorker = "SIGSTOP worker past its lease"
    case killCoordinator = "kill -9 coordinator"
    case
        restartDatabase = "restart PostgreSQL"
    case cutLinks = "cut connections"
    case delayLinks = "delay messages"
    case
        rogueClient = "rogue client"
    case nonMatchingWorker = "worker matching nothing"

    /// How often each is drawn, relative to the others.
    var weight: Int {
        switch self {
        case .killWorker: 4
        case .pauseWorker: 2
        case .killCoordinator: 1
        case .restartDatabase: 1
        case .cutLinks: 2
        case .delayLinks: 2
        case .rogueClient: 2
        case .nonMatchingWorker: 1
        }
    }
}

/// A PostgreSQL server, a coordinator and synthetic workers (half of them behind a proxy that
/// delays and cuts connections) render jobs while faults are injected at random; then every
/// invariant of the database is checked. It prints one summary line and fails on any violation.
@Test(.timeLimit(.minutes(30))) func stressRunLosesNothing() throws {
    let settings = StressSettings()
    var random = SeededGenerator(seed: settings.seed)
    let server = try TemporaryPostgres()  // its own server: restarting it must not disturb other tests
    defer { server.stop() }
    let (conninfo, endpoint) = try farmDatabase(server)
    let coordinatorPort = Int(endpoint.split(separator: ":").last!)!
    let lease = 3.0
    func coordinator() throws -> FarmProcess {
        try FarmProcess(
            [
                "coordinator", "--insecure", "--database", conninfo, "--listen", endpoint, "--heartbeat", "0.25",
                "--missed-heartbeats", "8", "--lease-seconds", String(lease),
            ], name: "stress-coordinator")
    }
    var coordinatorProcess = try coordinator()
    let proxy = try FaultProxy(upstreamPort: coordinatorPort)
    defer { proxy.stop() }
    func worker(_ index: Int) throws -> FarmProcess {
        let target = index % 2 == 0 ? endpoint : "tcp://127.0.0.1:\(proxy.port)"
        let delay = [0.02, 0.05, 0.1, 0.2][index % 4]
        return try FarmProcess(
            [
                "worker", "--insecure", "--coordinator", target, "--name", "stress-\(index)",
                "--engine", "synthetic", "--synthetic-delay", String(delay), "--slots", index % 5 == 0 ? "2" : "1",
            ],
            name: "stress-\(index)")
    }
    var workers = try (0..<settings.workers).map(worker)
    var paused: [(index: Int, until: Date)] = []
    // Peers that are no part of the farm's work: workers whose models match nothing, and rogue clients that
    // hand in results, progress and failures for other workers' tasks and try to take their names.
    var idleWorkers: [FarmProcess] = []
    let rogueContext = ZMQContext()
    var rogues: [Socket] = []
    let fakePNG = try PNGImage(width: 32, height: 32, format: .rgb, pixels: [UInt8](repeating: 7, count: 32 * 32 * 3)).pngData()
    func rogueBurst() throws {
        let rogue = try Socket(rogueContext, .dealer)
        try rogue.connect(endpoint)
        try rogue.send(WireMessage.hello(.init(workerID: "stress-rogue-\(rogues.count)", host: "evil", models: ["nothing"], slots: 1)).frames())
        let impostor = try Socket(rogueContext, .dealer)
        try impostor.connect(endpoint)
        try impostor.send(
            WireMessage.hello(
                .init(
                    workerID: "stress-\(rogues.count % settings.workers)", host: "evil",
                    models: ["synthetic"], slots: 4)
            ).frames())
        rogues += [rogue, impostor]
        Thread.sleep(forTimeInterval: 0.1)
        let targets = try JobStore(connection: Connection(conninfo)).testConnection
            .query("SELECT id, attempt FROM tasks ORDER BY random() LIMIT 20").rows
            .map { (try $0.decode("id", as: Int64.self), try $0.decode("attempt", as: Int.self)) }
        for (task, attempt) in targets {
            for socket in [rogue, impostor] {
                try socket.send(WireMessage.progress(.init(taskID: task, attempt: attempt, step: 5, total: 5)).frames())
                try socket.send(
                    WireMessage.result(
                        .init(taskID: task, attempt: attempt, width: 32, height: 32, seed: 0),
                        png: Data("NOT A PNG <script>".utf8)
                    ).frames())
                try socket.send(WireMessage.result(.init(taskID: task, attempt: attempt, width: 32, height: 32, seed: 0), png: fakePNG).frames())
                try socket.send(WireMessage.failed(.init(taskID: task, attempt: attempt, kind: .input, message: "rogue failure")).frames())
            }
        }
    }

    // Two jobs up front, a third submitted mid-run.
    let store = JobStore(connection: try Connection(conninfo))
    let first = settings.tasks / 2
    var jobs = [
        try store.enqueue(name: "stress-a", model: "synthetic", maxAttempts: 8, tasks: syntheticTasks(first)),
        try store.enqueue(name: "stress-b", model: "synthetic", maxAttempts: 8, tasks: syntheticTasks(settings.tasks / 4)),
    ]
    let third = settings.tasks - first - settings.tasks / 4

    var injected: [Fault: Int] = [:]
    let start = Date()
    let interval = max(0.2, min(2.0, settings.seconds / 100))
    while Date().timeIntervalSince(start) < settings.seconds || injected.values.reduce(0, +) < settings.faults {
        Thread.sleep(forTimeInterval: interval * Double.random(in: 0.5...1.5, using: &random))
        for pause in paused where pause.until <= Date() { workers[pause.index].signal(SIGCONT) }
        paused.removeAll { $0.until <= Date() }
        if jobs.count == 2, Date().timeIntervalSince(start) > settings.seconds / 2, third > 0 {
            let late = JobStore(connection: try Connection(conninfo))
            jobs.append(try late.enqueue(name: "stress-c", model: "synthetic", maxAttempts: 8, tasks: syntheticTasks(third)))
        }
        let fault = pick(&random)
        switch fault {
        case .killWorker:
            let index = Int.random(in: 0..<workers.count, using: &random)
            guard !paused.contains(where: { $0.index == index }) else { continue }
            workers[index].crash()
            workers[index] = try worker(index)
        case .pauseWorker:
            let index = Int.random(in: 0..<workers.count, using: &random)
            guard !paused.contains(where: { $0.index == index }) else { continue }
            workers[index].signal(SIGSTOP)
            paused.append((index, Date().addingTimeInterval(lease + 1.5)))
        case .killCoordinator:
            coordinatorProcess.crash()
            coordinatorProcess = try coordinator()
        case .restartDatabase:
            try server.restart(downtime: 0.5)
        case .cutLinks:
            proxy.cutAll()
        case .delayLinks:
            proxy.setDelay(Double.random(in: 0.05...0.4, using: &random))
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 2)
                proxy.setDelay(0)
            }
        case .rogueClient:
            try rogueBurst()
        case .nonMatchingWorker:
            idleWorkers.append(
                try FarmProcess(
                    [
                        "worker", "--insecure", "--coordinator", endpoint, "--name", "stress-idle-\(idleWorkers.count)",
                        "--engine", "test-pattern",
                    ], name: "stress-idle-\(idleWorkers.count)"))
        }
        injected[fault, default: 0] += 1
        // A coordinator that died by itself is restarted (as systemd would) and reported.
        if !coordinatorProcess.process.isRunning {
            Issue.record("the coordinator exited by itself: \(coordinatorProcess.output.suffix(2000))")
            coordinatorProcess = try coordinator()
        }
    }
    for pause in paused { workers[pause.index].signal(SIGCONT) }
    proxy.setDelay(0)

    // Faults over: everything must finish.
    let finished = try waitFor(max(120, settings.seconds)) {
        guard let check = try? JobStore(connection: Connection(conninfo)) else { return false }
        return try jobs.allSatisfy { try check.progress(job: $0).isFinished }
    }
    let check = JobStore(connection: try Connection(conninfo))
    var violations = try stressViolations(check.testConnection)
    // Nothing a rogue said was stored.
    for row in try check.testConnection.query("SELECT id FROM tasks WHERE error_message LIKE '%rogue%'").rows {
        violations.append("task \(try row.decode("id", as: Int64.self)) failed with a rogue client's message")
    }
    for row in try check.testConnection.query("SELECT task_id FROM images WHERE png = $1", [fakePNG]).rows {
        violations.append("task \(try row.decode("task_id", as: Int64.self)) stored a rogue client's image")
    }
    let counts = try check.testConnection.query("SELECT state, count(*)::bigint AS n FROM tasks GROUP BY state ORDER BY state").rows
        .map { "\(try $0.decode("n", as: Int64.self)) \(try $0.decode("state", as: String.self))" }
    let faults = injected.values.reduce(0, +)
    print(
        "stress: \(settings.tasks) tasks (\(counts.joined(separator: ", "))), \(faults) faults injected ("
            + Fault.allCases.map { "\($0.rawValue) \(injected[$0] ?? 0)" }.joined(separator: ", ")
            + "), \(settings.workers) workers, \(Int(Date().timeIntervalSince(start))) s, \(violations.count) invariant violations")
    #expect(finished, "jobs did not finish after the faults stopped: \(coordinatorProcess.output.suffix(3000))")
    #expect(violations.isEmpty, "\(violations.prefix(20).joined(separator: "\n"))")
    #expect(faults >= settings.faults, "only \(faults) faults injected")
    withExtendedLifetime((workers, idleWorkers, rogues)) {}
}

/// Picks a fault by weight.
func pick(_ random: inout SeededGenerator) -> Fault {
    let total = Fault.allCases.reduce(0) { $0 + $1.weight }
    var draw = Int.random(in: 0..<total, using: &random)
    for fault in Fault.allCases {
        if draw < fault.weight { return fault }
        draw -= fault.weight
    }
    return .killWorker
}

/// Every broken invariant of a finished farm database, one line each (empty when sound):
/// tasks all ended (failed ones with a reason); exactly one image per done task, none for
/// others, from the attempt that held the last lease (the fencing token); one completion
/// event per done task, for that attempt; each job's counters equal its tasks; no worker
/// blocklisted without the failures that blocklist it.
func stressViolations(_ connection: Connection) throws -> [String] {
    var violations: [String] = []
    func each(_ sql: String, _ describe: (Row) throws -> String) throws {
        for row in try connection.query(sql).rows { violations.append(try describe(row)) }
    }
    try each("SELECT id, state FROM tasks WHERE state NOT IN ('done', 'failed', 'cancelled')") {
        "task \(try $0.decode("id", as: Int64.self)) ended \(try $0.decode("state", as: String.self))"
    }
    try each("SELECT id FROM tasks WHERE state = 'failed' AND coalesce(error_message, '') = ''") {
        "task \(try $0.decode("id", as: Int64.self)) failed without a reason"
    }
    try each(
        """
        SELECT t.id, t.state, count(i.task_id)::bigint AS images FROM tasks t LEFT JOIN images i ON i.task_id = t.id
        GROUP BY t.id, t.state HAVING count(i.task_id) <> CASE WHEN t.state = 'done' THEN 1 ELSE 0 END
        """
    ) {
        "task \(try $0.decode("id", as: Int64.self)) (\(try $0.decode("state", as: String.self))) has \(try $0.decode("images", as: Int64.self)) images"
    }
    try each("SELECT t.id, t.attempt, i.attempt AS stored FROM tasks t JOIN images i ON i.task_id = t.id WHERE i.attempt <> t.attempt") {
        "task \(try $0.decode("id", as: Int64.self)): image from attempt \(try $0.decode("stored", as: Int.self)), last lease was attempt \(try $0.decode("attempt", as: Int.self))"
    }
    try each(
        """
        SELECT t.id, count(e.id)::bigint AS completions, bool_and(e.attempt = t.attempt) AS fenced
        FROM tasks t LEFT JOIN events e ON e.task_id = t.id AND e.kind = 'task.done'
        WHERE t.state = 'done' GROUP BY t.id HAVING count(e.id) <> 1 OR NOT bool_and(e.attempt = t.attempt)
        """
    ) { "task \(try $0.decode("id", as: Int64.self)): \(try $0.decode("completions", as: Int64.self)) completions recorded" }
    try each(
        """
        SELECT j.id FROM jobs j WHERE j.task_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id)
            OR j.queued_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued')
            OR j.running_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'running')
            OR j.done_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'done')
            OR j.failed_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'failed')
            OR j.cancelled_count <> (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'cancelled')
        """
    ) { "job \(try $0.decode("id", as: Int64.self)): its counters do not match its tasks" }
    try each(
        """
        SELECT f.job_id, f.worker_id FROM job_worker_failures f
        WHERE f.blocked AND (SELECT count(*) FROM events e WHERE e.job_id = f.job_id AND e.worker_id = f.worker_id
                             AND e.kind = 'task.failed.host') < f.failures
        """
    ) { "worker \(try $0.decode("worker_id", as: String.self)) blocklisted for job \(try $0.decode("job_id", as: Int64.self)) without its failures" }
    return violations
}
