import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

@Test func killedWorkerTaskIsRenderedByTheOther() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let victim = try startSyntheticWorker(endpoint, name: "victim", delay: 2)
    let job = try store.enqueue(name: "kill-worker", model: "synthetic", tasks: syntheticTasks(4))
    let inFlight = try awaitTaskInProgress(store, worker: "victim")
    #expect(inFlight != nil, "\(victim.output)")
    victim.signal(SIGKILL)
    let survivor = try startSyntheticWorker(endpoint, name: "survivor", delay: 0.2)
    #expect(try waitFor(60) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n\(survivor.output)")
    try expectAllDoneOnce(store, job: job, count: 4)
    let attempt = try store.testConnection.query("SELECT attempt FROM images WHERE task_id = $1", [inFlight!.id]).single()
    #expect(try attempt.decode("attempt", as: Int.self) == inFlight!.attempt + 1, "the killed worker's task was rendered again")
    let owner = try store.testConnection.query("SELECT error_message FROM tasks WHERE id = $1", [inFlight!.id]).single()
    #expect(try owner.decode("error_message", as: String.self).contains("victim"))
    withExtendedLifetime((coordinator, survivor)) {}
}

@Test func coordinatorRestartKeepsTheInFlightResult() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    var coordinator = try startCoordinator(conninfo, endpoint)
    let workers = try ["a", "b"].map { try startSyntheticWorker(endpoint, name: $0, delay: 1.5) }
    let job = try store.enqueue(name: "kill-coordinator", model: "synthetic", tasks: syntheticTasks(6))
    let inFlight = try awaitTaskInProgress(store)
    #expect(inFlight != nil, "\(workers[0].output)")
    coordinator.crash()
    Thread.sleep(forTimeInterval: 0.5)
    coordinator = try startCoordinator(conninfo, endpoint)
    #expect(
        try waitFor(90) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n---\n\(workers[0].output)\n---\n\(workers[1].output)")
    try expectAllDoneOnce(store, job: job, count: 6)
    // The task in flight across the restart kept its attempt: its result from before was handed in.
    let attempt = try store.testConnection.query("SELECT attempt FROM images WHERE task_id = $1", [inFlight!.id]).single()
    #expect(try attempt.decode("attempt", as: Int.self) == inFlight!.attempt, "\(coordinator.output)")
}

/// Two coordinators serve one database side by side (active/active: each leases tasks to the
/// workers connected to it, `FOR UPDATE SKIP LOCKED` keeps their claims apart, and the attempt
/// number fences results). Workers list both; killing one leaves the other serving all of them.
@Test func secondCoordinatorServesEveryWorkerWhenOneDies() throws {
    let (conninfo, first) = try farmDatabase()
    let second = "tcp://127.0.0.1:\(try TemporaryPostgres.freePort())"
    let store = JobStore(connection: try Connection(conninfo))
    let coordinators = [try startCoordinator(conninfo, first), try startCoordinator(conninfo, second)]
    // Half the workers prefer each coordinator.
    let workers = try (0..<4).map { index in
        let order = index % 2 == 0 ? [first, second] : [second, first]
        return try FarmProcess(
            [
                "worker", "--insecure", "--coordinator", order[0], "--coordinator", order[1],
                "--name", "w\(index)", "--engine", "synthetic", "--synthetic-delay", "0.3",
            ], name: "w\(index)")
    }
    let job = try store.enqueue(name: "two-coordinators", model: "synthetic", tasks: syntheticTasks(60))
    // Both coordinators are dispatching before one dies.
    #expect(
        try waitFor(30) {
            try store.testConnection.query("SELECT count(DISTINCT lease_owner)::bigint AS n FROM tasks WHERE state = 'running'")
                .single().decode("n", as: Int64.self) >= 3
        }, "\(coordinators[0].output)\n---\n\(coordinators[1].output)")
    coordinators[0].crash()
    #expect(try !store.progress(job: job).isFinished, "the job finished before a coordinator died")
    #expect(
        try waitFor(120) { try store.progress(job: job).isFinished },
        "\(coordinators[1].output)\n---\n\(workers.map(\.output).joined(separator: "\n---\n"))")
    try expectAllDoneOnce(store, job: job, count: 60)
    // Every worker, including those that preferred the dead coordinator, fails over to the survivor
    // (the job may finish first: the other workers carry it while they fail over).
    let survivor = coordinators[1]
    #expect(
        waitFor(30) { (0..<4).allSatisfy { survivor.output.contains("worker w\($0) ") } },
        "not every worker joined the surviving coordinator:\n\(survivor.output)")
    // The workers must live to here: released after their last use, they would be killed.
    withExtendedLifetime(workers) {}
}

@Test func coordinatorReconnectsAfterPostgresRestart() throws {
    let server = try TemporaryPostgres()
    defer { server.stop() }
    let (conninfo, endpoint) = try farmDatabase(server)
    let job = try JobStore(connection: try Connection(conninfo)).enqueue(name: "restart-db", model: "synthetic", tasks: syntheticTasks(6))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let workers = try ["a", "b"].map { try startSyntheticWorker(endpoint, name: $0, delay: 0.8) }
    #expect(
        try waitFor(30) {
            let done = try JobStore(connection: try Connection(conninfo)).progress(job: job).counts[.done, default: 0]
            return done >= 1
        })
    try server.restart(downtime: 1)
    let store = JobStore(connection: try Connection(conninfo))
    #expect(try waitFor(90) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n\(workers[0].output)")
    try expectAllDoneOnce(store, job: job, count: 6)
    #expect(coordinator.output.contains("database reconnected"), "\(coordinator.output)")
}

/// One coordinator and two worker processes with a tiny real model render 20 tasks; each
/// image equals what `farm render` draws with the same parameters.
@Test func twoWorkerProcessesRenderLikeFarmRender() throws {
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    let model = models.appendingPathComponent("tiny")
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let workers = try ["one", "two"].map {
        try FarmProcess(["worker", "--insecure", "--coordinator", endpoint, "--name", $0, "--models", models.path], name: $0)
    }
    let samplers = ["euler", "euler_a", "dpmpp_2m", "ddim"]
    let tasks = (0..<20).map { index in
        TaskParameters(
            prompt: "a (red:1.2) fox number \(index)", negativePrompt: index % 2 == 0 ? "blurry" : "",
            model: "tiny", width: 24, height: 16, steps: 3, cfgScale: 6, sampler: samplers[index % 4],
            seed: UInt64(1000 + index))
    }
    // Both workers are in before the job arrives, so that both take part.
    #expect(
        try waitFor(60) {
            try store.testConnection.query("SELECT count(*) AS n FROM workers WHERE id IN ('one', 'two')").single().decode("n", as: Int.self) == 2
        }, "\(workers[0].output)\n\(workers[1].output)")
    let job = try store.enqueue(name: "e2e", model: "tiny", tasks: tasks)
    #expect(try waitFor(120) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n\(workers[0].output)")
    #expect(try store.progress(job: job).counts == [.done: 20])
    let images = try store.images(job: job)
    #expect(images.count == 20)
    for image in images {
        let task = tasks[image.index]
        let out = models.appendingPathComponent("render-\(image.index).png").path
        var arguments = [
            "render", "--model", model.path, "--prompt", task.prompt, "--width", "24", "--height", "16",
            "--steps", "3", "--cfg", "6", "--sampler", task.sampler, "--seed", String(task.seed), "--out", out,
        ]
        if !task.negativePrompt.isEmpty { arguments += ["--negative", task.negativePrompt] }
        #expect(try runFarm(arguments).status == 0)
        let local = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
        let farmed = try PNGImage(pngData: image.png)
        #expect(farmed.pixels == local.pixels, "task \(image.index) (\(task.sampler)) differs from farm render")
    }
    withExtendedLifetime((coordinator, workers)) {}
}

/// The CLI end to end: a YAML sweep is submitted and followed with --wait, synthetic workers
/// render it, fetch writes {job}-{index}-{seed}.png with the metadata; bad specs exit 2 with
/// one line and create nothing.
@Test func submitSweepWaitAndFetch() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("spec-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let spec = folder.appendingPathComponent("foxes.yaml")
    try """
    name: foxes
    model: synthetic
    defaults: {steps: 10, cfg: 7, sampler: euler_a, width: 32, height: 32}
    sweep:
      prompt: ["a red fox in the snow", "a castle at night", "a bowl of soup"]
      seed: "1-4"
    """.write(to: spec, atomically: true, encoding: .utf8)
    let store = JobStore(connection: try Connection(conninfo))
    let jobsBefore = { () throws -> Int in try store.testConnection.query("SELECT count(*) AS n FROM jobs").single().decode("n") }
    for (name, text) in [
        ("unknown.yaml", "model: m\nsweep: {prompt: [a]}\ncolour: red\n"), ("steps.yaml", "model: m\nitems: [{prompt: a, steps: -1}]\n"),
        ("broken.yaml", "model: m\n  items: [\n"), ("nomodel.yaml", "sweep: {prompt: [a]}\n"),
    ] {
        let file = folder.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        let result = try runFarm(["submit", file.path, "--database", conninfo])
        #expect(result.status == 2 && result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(name), "\(result.stderr)")
    }
    #expect(try jobsBefore() == 0, "bad specs create nothing")

    let coordinator = try startCoordinator(conninfo, endpoint)
    let workers = try ["s1", "s2"].map { try startSyntheticWorker(endpoint, name: $0, delay: 0.05) }
    let submit = Process()
    submit.executableURL = farmBinary
    submit.arguments = ["submit", spec.path, "--database", conninfo, "--wait"]
    let output = Pipe()
    submit.standardOutput = output
    submit.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try submit.run()
    let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    submit.waitUntilExit()
    #expect(submit.terminationStatus == 0, "\(coordinator.output)\n\(workers[0].output)")
    let job = try #require(Int64(printed.trimmingCharacters(in: .whitespacesAndNewlines)))
    #expect(try store.progress(job: job).counts == [.done: 12])

    let out = folder.appendingPathComponent("out")
    #expect(try runFarm(["fetch", String(job), "--database", conninfo, "--out", out.path]).status == 0)
    let names = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
    let expected = (0..<12).map { "\(job)-\($0)-\($0 % 4 + 1).png" }.sorted()
    #expect(names == expected)
    for index in 0..<12 {
        let image = try PNGImage(pngData: Data(contentsOf: out.appendingPathComponent("\(job)-\(index)-\(index % 4 + 1).png")))
        #expect(image.textValue("seed") == String(index % 4 + 1))
        let prompt = ["a red fox in the snow", "a castle at night", "a bowl of soup"][index / 4]
        #expect(
            image.textValue("parameters")
                == "\(prompt)\nSteps: 10, Sampler: Euler a, CFG scale: 7.0, Seed: \(index % 4 + 1), Size: 32x32, Model: synthetic")
    }
    // watch on a finished job prints its line and returns.
    let watched = Process()
    watched.executableURL = farmBinary
    watched.arguments = ["watch", String(job), "--database", conninfo]
    let watchOutput = Pipe()
    watched.standardOutput = watchOutput
    try watched.run()
    let watchText = String(decoding: watchOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    watched.waitUntilExit()
    #expect(watched.terminationStatus == 0 && watchText.contains("job \(job) foxes [########################] 12/12 done"), "\(watchText)")
    // Resumable: a second fetch skips what is there.
    #expect(try runFarm(["fetch", String(job), "--database", conninfo, "--out", out.path]).status == 0)
    withExtendedLifetime(coordinator) {}
}

/// pause/resume/cancel/retry change what workers get, seen through the CLI.
@Test func jobControlsChangeWhatWorkersGet() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let job = try store.enqueue(name: "controls", model: "synthetic", tasks: syntheticTasks(6))
    #expect(try runFarm(["pause", String(job), "--database", conninfo]).status == 0)
    let coordinator = try startCoordinator(conninfo, endpoint)
    let worker = try startSyntheticWorker(endpoint, name: "controlled", delay: 0.05)
    #expect(
        try waitFor(30) {
            try store.testConnection.query("SELECT count(*) AS n FROM workers WHERE id = 'controlled'").single().decode("n", as: Int.self) == 1
        })
    Thread.sleep(forTimeInterval: 1)
    #expect(try store.progress(job: job).counts == [.queued: 6], "a paused job is not handed out")
    #expect(try runFarm(["resume", String(job), "--database", conninfo]).status == 0)
    #expect(try waitFor(30) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n\(worker.output)")
    #expect(try store.progress(job: job).counts == [.done: 6])

    // A job no worker can take yet, cancelled: its tasks stop for good.
    let second = try store.enqueue(
        name: "cancelled", model: "other",
        tasks: (0..<3).map { TaskParameters(prompt: "x\($0)", model: "other", width: 32, height: 32, steps: 1) })
    #expect(try runFarm(["cancel", String(second), "--database", conninfo]).status == 0)
    #expect(try store.progress(job: second).counts == [.cancelled: 3])
    // A failed task comes back with retry (and its paused job resumes).
    // (A task of a model nobody has is failed by hand, then pointed at the synthetic model.)
    let third = try store.enqueue(
        name: "retried", model: "synthetic",
        tasks: [TaskParameters(prompt: "task 0", model: "other", width: 32, height: 32, steps: 5)])
    try store.testConnection.query(
        """
        UPDATE tasks SET state = 'failed', finished_at = now(), error_kind = 'host',
            parameters = jsonb_set(parameters, '{model}', '"synthetic"') WHERE job_id = $1
        """, [third])
    #expect(try store.progress(job: third).counts == [.failed: 1])
    #expect(try runFarm(["retry", String(third), "--database", conninfo]).status == 0)
    #expect(try waitFor(30) { try store.progress(job: third).counts == [.done: 1] })
    #expect(try runFarm(["job", "999999", "--database", conninfo]).status == 2)
    #expect(try runFarm(["jobs", "--database", conninfo, "--json"]).status == 0)
    #expect(try runFarm(["workers", "--database", conninfo]).status == 0)
    withExtendedLifetime(coordinator) {}
}

/// drain makes a worker finish its task and take no more (its process exits); cordon stops
/// new work while the worker stays; uncordon gives it work again.
@Test func drainAndCordonSteerWorkers() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let leaving = try startSyntheticWorker(endpoint, name: "leaving", delay: 1.5)
    let staying = try startSyntheticWorker(endpoint, name: "staying", delay: 0.2)
    #expect(
        try waitFor(30) {
            try store.testConnection.query("SELECT count(*) AS n FROM workers").single().decode("n", as: Int.self) == 2
        })
    #expect(try runFarm(["cordon", "staying", "--database", conninfo]).status == 0)
    Thread.sleep(forTimeInterval: 0.5)
    let job = try store.enqueue(name: "drain", model: "synthetic", tasks: syntheticTasks(4))
    let held = try awaitTaskInProgress(store, worker: "leaving")
    #expect(held != nil)
    #expect(
        try store.testConnection.query("SELECT count(*) AS n FROM tasks WHERE lease_owner = 'staying'").single().decode("n", as: Int.self) == 0,
        "a cordoned worker gets nothing")
    #expect(try runFarm(["drain", "leaving", "--database", conninfo]).status == 0)
    #expect(try runFarm(["uncordon", "staying", "--database", conninfo]).status == 0)
    #expect(waitFor(30) { !leaving.process.isRunning }, "a drained worker exits: \(leaving.output)")
    #expect(leaving.process.terminationStatus == 0)
    #expect(try waitFor(60) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n\(staying.output)")
    #expect(try store.progress(job: job).counts == [.done: 4])
    // The task the drained worker held was finished by it, not redone.
    let attempt = try store.testConnection.query("SELECT attempt FROM images WHERE task_id = $1", [held!.id]).single()
    #expect(try attempt.decode("attempt", as: Int.self) == held!.attempt)
    #expect(try runFarm(["drain", "nobody", "--database", conninfo]).status == 2)
    withExtendedLifetime((coordinator, leaving, staying)) {}
}

/// Cancelling a job stops the task a worker is rendering: the worker is free for the next job at once.
@Test func cancelStopsTheTaskInHand() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let worker = try startSyntheticWorker(endpoint, name: "busy", delay: 20)
    // 20 seconds in 20 steps: the render notices a cancellation within a second.
    let long = try store.enqueue(
        name: "long", model: "synthetic",
        tasks: [TaskParameters(prompt: "long", model: "synthetic", width: 32, height: 32, steps: 20)])
    #expect(try waitFor(30) { try taskInProgress(store, worker: "busy") != nil }, "\(worker.output)")
    let next = try store.enqueue(name: "next", model: "synthetic", tasks: syntheticTasks(1))
    let cancelled = Date()
    #expect(try runFarm(["cancel", String(long), "--database", conninfo]).status == 0)
    // The 20-second task is abandoned; the next job's task is handed out within seconds, not after 20.
    #expect(
        try waitFor(15) { try store.progress(job: next).counts[.running] == 1 || store.progress(job: next).counts[.done] == 1 },
        "\(coordinator.output)\n\(worker.output)")
    #expect(Date().timeIntervalSince(cancelled) < 15)
    #expect(try store.progress(job: long).counts == [.cancelled: 1])
}
