import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Test func sweepOverHTTPRendersAndServesImages() throws {
    let farm = try HTTPFarm()
    #expect(farm.admin.count == 64 && farm.submit.count == 64 && farm.admin != farm.submit)
    let store = JobStore(connection: try Connection(farm.conninfo))
    // Only hashes are stored.
    let stored = try store.testConnection.query("SELECT encode(sha256, 'hex') AS h FROM api_tokens ORDER BY id").rows.map {
        try $0.decode("h", as: String.self)
    }
    #expect(stored == [SHA256.hex(of: Data(farm.admin.utf8)), SHA256.hex(of: Data(farm.submit.utf8))])

    let workers = try ["h1", "h2"].map { try startSyntheticWorker(farm.endpoint, name: $0, delay: 0.1) }
    let spec = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString.prefix(6)).yaml")
    try """
    name: http-sweep
    model: synthetic
    defaults: {steps: 5, cfg: 7, sampler: euler_a, width: 32, height: 32}
    sweep:
      prompt: ["a red fox in the snow", "a castle at night", "a bowl of soup"]
      seed: "1-4"
    """.write(to: spec, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: spec) }
    let submitted = try runFarmCapturing(["submit", spec.path, "--server", farm.server, "--token", farm.submit, "--wait"])
    #expect(submitted.status == 0, "\(submitted.stderr)\n\(farm.coordinator.output)\n\(workers[0].output)")
    let job = try #require(Int64(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    #expect(submitted.stderr.contains("job \(job): queued=0 running=0 done=12 failed=0 cancelled=0"))
    #expect(try store.progress(job: job).counts == [.done: 12])

    // The job over HTTP: counts with one key per state.
    let detail = try httpRequest("GET", "\(farm.server)/v1/jobs/\(job)", token: farm.submit)
    #expect(detail.status == 200 && detail.contentType.hasPrefix("application/json"))
    let counts = jsonObject(detail.body)["counts"] as? [String: Any] ?? [:]
    #expect(Set(counts.keys) == Set(TaskState.allCases.map(\.rawValue)))
    #expect((counts["done"] as? NSNumber)?.intValue == 12)

    // --json prints the same through the database and through the API.
    for arguments in [["job", String(job), "--json"], ["jobs", "--json"]] {
        let direct = try runFarmCapturing(arguments + ["--database", farm.conninfo])
        let remote = try runFarmCapturing(arguments + ["--server", farm.server, "--token", farm.admin])
        #expect(direct.status == 0 && remote.status == 0, "\(direct.stderr) \(remote.stderr)")
        #expect(direct.stdout == remote.stdout && direct.stdout.contains("\"done\" : 12"))
    }
    let workerList = try runFarmCapturing(["workers", "--json", "--server", farm.server, "--token", farm.admin])
    #expect(workerList.status == 0 && workerList.stdout.contains("\"h1\"") && workerList.stdout.contains("\"h2\""), "\(workerList.stderr)")

    // farm fetch over HTTP writes what the database holds, under {job}-{index}-{seed}.png.
    let fetched = FileManager.default.temporaryDirectory.appendingPathComponent("fetch-\(UUID().uuidString.prefix(6))")
    defer { try? FileManager.default.removeItem(at: fetched) }
    let fetch = try runFarmCapturing(["fetch", String(job), "--out", fetched.path, "--server", farm.server, "--token", farm.submit])
    #expect(fetch.status == 0 && fetch.stdout.contains("wrote 12 image(s)"), "\(fetch.stderr)")
    for image in try store.images(job: job) {
        let file = fetched.appendingPathComponent("\(job)-\(image.index)-\(image.seed).png")
        #expect(try Data(contentsOf: file) == image.png, "\(file.lastPathComponent)")
    }
    let again = try runFarmCapturing(["fetch", String(job), "--out", fetched.path, "--server", farm.server, "--token", farm.submit])
    #expect(again.stdout.contains("wrote 0 image(s)") && again.stdout.contains("12 already there"))

    // Images: the list, then one PNG.
    let list = try httpRequest("GET", "\(farm.server)/v1/jobs/\(job)/images", token: farm.submit)
    #expect(list.status == 200)
    let images = (try JSONSerialization.jsonObject(with: list.body)) as? [[String: Any]] ?? []
    #expect(images.count == 12)
    #expect(images.map { ($0["index"] as? NSNumber)?.intValue ?? -1 } == Array(0..<12))
    #expect(Set(images.map { ($0["seed"] as? NSNumber)?.intValue ?? -1 }) == [1, 2, 3, 4])
    let task = try #require((images.first?["task"] as? NSNumber)?.int64Value)
    let png = try httpRequest("GET", "\(farm.server)/v1/tasks/\(task)/image", token: farm.submit)
    #expect(png.status == 200 && png.contentType == "image/png")
    #expect(png.body == (try store.images(job: job).first?.png))
    let decoded = try PNGImage(pngData: png.body)
    #expect(decoded.width == 32 && decoded.height == 32)
    #expect(try httpRequest("GET", "\(farm.server)/v1/tasks/999999/image", token: farm.submit).status == 404)

    // Tokens: missing, unknown, revoked, too small a role.
    #expect(try httpRequest("GET", "\(farm.server)/v1/jobs").status == 401)
    #expect(try httpRequest("GET", "\(farm.server)/v1/jobs", token: String(repeating: "0", count: 64)).status == 401)
    let revocable = try runFarmCapturing(["tokens", "create", "--role", "admin", "--name", "revoke-me", "--database", farm.conninfo])
    let revocableToken = revocable.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(try httpRequest("GET", "\(farm.server)/v1/workers", token: revocableToken).status == 200)
    let listed = try runFarmCapturing(["tokens", "list", "--json", "--database", farm.conninfo])
    #expect(!listed.stdout.contains(revocableToken) && listed.stdout.contains("revoke-me"))
    let tokenRows = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [[String: Any]] ?? []
    let revokeID = try #require(tokenRows.first { $0["name"] as? String == "revoke-me" }?["id"] as? NSNumber)
    #expect(try runFarmCapturing(["tokens", "revoke", "\(revokeID.int64Value)", "--database", farm.conninfo]).status == 0)
    let revoked = try httpRequest("GET", "\(farm.server)/v1/workers", token: revocableToken)
    #expect(revoked.status == 401 && jsonObject(revoked.body)["error"] as? String == "invalid or revoked token")
    // Tokens over HTTP, by an admin: create prints only the secret, list never shows it, revoke works.
    let adminRemote = ["--server", farm.server, "--token", farm.admin]
    let viaHTTP = try runFarmCapturing(["tokens", "create", "--role", "submit", "--name", "via-http"] + adminRemote)
    let viaHTTPToken = viaHTTP.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(viaHTTP.status == 0 && viaHTTPToken.count == 64 && viaHTTP.stdout == viaHTTPToken + "\n", "\(viaHTTP.stderr)")
    #expect(try httpRequest("GET", "\(farm.server)/v1/jobs", token: viaHTTPToken).status == 200)
    #expect(try httpRequest("GET", "\(farm.server)/v1/workers", token: viaHTTPToken).status == 403)
    let remoteList = try runFarmCapturing(["tokens", "list", "--json"] + adminRemote)
    let directList = try runFarmCapturing(["tokens", "list", "--json", "--database", farm.conninfo])
    #expect(remoteList.status == 0 && remoteList.stdout == directList.stdout && remoteList.stdout.contains("via-http"))
    #expect(!remoteList.stdout.contains(viaHTTPToken) && !remoteList.stdout.contains(farm.admin))
    let viaHTTPID = try #require(
        ((try JSONSerialization.jsonObject(with: Data(remoteList.stdout.utf8))) as? [[String: Any]])?
            .first { $0["name"] as? String == "via-http" }?["id"] as? NSNumber)
    #expect(try runFarmCapturing(["tokens", "revoke", "\(viaHTTPID.int64Value)"] + adminRemote).status == 0)
    #expect(try httpRequest("GET", "\(farm.server)/v1/jobs", token: viaHTTPToken).status == 401)
    let revokedTwice = try runFarmCapturing(["tokens", "revoke", "\(viaHTTPID.int64Value)"] + adminRemote)
    #expect(revokedTwice.status == 2 && revokedTwice.stderr == "farm: no unrevoked token has id \(viaHTTPID.int64Value)\n")
    #expect(try httpRequest("GET", "\(farm.server)/v1/tokens", token: farm.submit).status == 403)
    let badRole = try httpRequest("POST", "\(farm.server)/v1/tokens", token: farm.admin, body: Data(#"{"role": "root"}"#.utf8))
    #expect(badRole.status == 400 && jsonObject(badRole.body)["field"] as? String == "role")
    let badField = try httpRequest("POST", "\(farm.server)/v1/tokens", token: farm.admin, body: Data(#"{"role": "admin", "ttl": 3}"#.utf8))
    #expect(badField.status == 400 && jsonObject(badField.body)["field"] as? String == "ttl")
    let forbidden = try runFarmCapturing(["drain", "h1", "--server", farm.server, "--token", farm.submit])
    #expect(forbidden.status == 2 && forbidden.stderr == "farm: this route needs an admin token\n", "\(forbidden.stderr)")
    #expect(try httpRequest("POST", "\(farm.server)/v1/workers/h1/drain", token: farm.submit).status == 403)
    let states = try store.workerStates(["h1", "h2"])
    #expect(states["h1"] == .online, "\(states) \(farm.coordinator.output) \(workers.map(\.output))")
    let drained = try runFarmCapturing(["cordon", "h1", "--server", farm.server, "--token", farm.admin])
    #expect(drained.status == 0 && drained.stdout == "worker h1: cordoned\n")
    #expect(try store.workerStates(["h1"]) == ["h1": .cordoned])

    // Unknown routes.
    let missing = try httpRequest("GET", "\(farm.server)/v1/nothing", token: farm.admin)
    #expect(missing.status == 404 && jsonObject(missing.body)["error"] != nil)
    #expect(try httpRequest("GET", "\(farm.server)/v1/jobs/999999", token: farm.admin).status == 404)

    // A bad spec: 400 naming the field, and no job made.
    let jobsBefore = try store.testConnection.query("SELECT count(*) AS n FROM jobs").single().decode("n", as: Int.self)
    let badSpec = """
        name: bad
        model: synthetic
        defaults: {steps: -3, width: 32, height: 32}
        items:
          - prompt: a fox
        """
    let bad = try httpRequest("POST", "\(farm.server)/v1/jobs?format=yaml", token: farm.submit, body: Data(badSpec.utf8))
    #expect(bad.status == 400, "\(String(decoding: bad.body, as: UTF8.self))")
    let badError = jsonObject(bad.body)
    #expect((badError["field"] as? String)?.contains("steps") == true, "\(badError)")
    #expect((badError["error"] as? String)?.isEmpty == false)
    let badFormat = try httpRequest("POST", "\(farm.server)/v1/jobs?format=xml", token: farm.submit, body: Data("x".utf8))
    #expect(badFormat.status == 400 && jsonObject(badFormat.body)["field"] as? String == "format")
    let badFile = spec.deletingLastPathComponent().appendingPathComponent("bad-\(UUID().uuidString.prefix(6)).yaml")
    try badSpec.write(to: badFile, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: badFile) }
    let badCLI = try runFarmCapturing(["submit", badFile.path, "--server", farm.server, "--token", farm.submit])
    #expect(badCLI.status == 2 && badCLI.stderr.hasPrefix("farm: ") && badCLI.stderr.contains("steps"), "\(badCLI.stderr)")

    // A body over 64 MiB: 413, and still no job.
    let huge = try httpRequest(
        "POST", "\(farm.server)/v1/jobs", token: farm.submit,
        body: Data(repeating: UInt8(ascii: "#"), count: (64 << 20) + 1))
    #expect(huge.status == 413 && jsonObject(huge.body)["error"] != nil)
    #expect(try store.testConnection.query("SELECT count(*) AS n FROM jobs").single().decode("n", as: Int.self) == jobsBefore)
}

@Test func jobControlsThroughTheCLIOverHTTP() throws {
    let farm = try HTTPFarm()
    let store = JobStore(connection: try Connection(farm.conninfo))
    let worker = try startSyntheticWorker(farm.endpoint, name: "slow", delay: 0.5)
    let spec = FileManager.default.temporaryDirectory.appendingPathComponent("long-\(UUID().uuidString.prefix(6)).txt")
    try (0..<40).map { "prompt \($0)" }.joined(separator: "\n").write(to: spec, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: spec) }
    let submitted = try runFarmCapturing([
        "submit", spec.path, "--model", "synthetic", "--width", "32", "--height", "32",
        "--steps", "3", "--server", farm.server, "--token", farm.admin,
    ])
    #expect(submitted.status == 0, "\(submitted.stderr)")
    let job = try #require(Int64(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    #expect(try store.progress(job: job).total == 40)
    #expect(try waitFor(30) { try store.progress(job: job).counts[.done, default: 0] >= 1 }, "\(worker.output)")
    func jobState() throws -> String {
        try store.testConnection.query("SELECT state FROM jobs WHERE id = $1", [job]).single().decode("state")
    }
    let remote = ["--server", farm.server, "--token", farm.admin]

    let paused = try runFarmCapturing(["pause", String(job)] + remote)
    #expect(paused.status == 0 && paused.stdout.hasPrefix("job \(job): queued="), "\(paused.stderr)")
    #expect(try jobState() == "paused")
    Thread.sleep(forTimeInterval: 1.2)
    let doneWhilePaused = try store.progress(job: job).counts[.done, default: 0]
    Thread.sleep(forTimeInterval: 1.2)
    #expect(try store.progress(job: job).counts[.done, default: 0] == doneWhilePaused, "a paused job gets no new tasks")

    #expect(try runFarmCapturing(["resume", String(job)] + remote).status == 0)
    #expect(try jobState() == "active")
    #expect(try waitFor(30) { try store.progress(job: job).counts[.done, default: 0] > doneWhilePaused })

    // The workers' live columns: device, loaded model, current task with its step and speed.
    var current: [String: Any] = [:]
    let live = try waitFor(20) {
        let listed = try runFarmCapturing(["workers", "--json"] + remote)
        let workers = (try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8))) as? [[String: Any]] ?? []
        guard let slow = workers.first(where: { $0["name"] as? String == "slow" }),
            let running = slow["current"] as? [String: Any], (running["total_steps"] as? NSNumber)?.intValue == 3,
            running["steps_per_second"] is NSNumber, slow["loaded_model"] as? String == "synthetic",
            (slow["device"] as? String)?.contains("cores") == true
        else { return false }
        current = running
        return true
    }
    let lastListing = try runFarmCapturing(["workers", "--json"] + remote).stdout
    #expect(live, "\(lastListing)")
    #expect((current["job"] as? NSNumber)?.int64Value == job)
    let table = try runFarmCapturing(["workers"] + remote)
    #expect(table.status == 0 && table.stdout.hasPrefix("NAME") && table.stdout.contains("LOADED") && table.stdout.contains("synthetic"))

    // farm watch over HTTP, piped: plain lines with the job's bar and the worker's step.
    let watcher = try FarmProcess(["watch", String(job), "--interval", "0.2"] + remote, name: "watch")
    #expect(waitFor(20) { watcher.output.contains("worker slow: task") && watcher.output.contains("job \(job) ") }, "\(watcher.output)")
    #expect(!watcher.output.contains("\u{1B}["), "no terminal escapes when piped")

    // A submit token may not steer jobs.
    let forbidden = try runFarmCapturing(["cancel", String(job), "--server", farm.server, "--token", farm.submit])
    #expect(forbidden.status == 2 && forbidden.stderr.hasPrefix("farm: "))
    #expect(try jobState() == "active")

    let cancelled = try runFarmCapturing(["cancel", String(job)] + remote)
    #expect(cancelled.status == 0, "\(cancelled.stderr)")
    #expect(try jobState() == "cancelled")
    let counts = try store.progress(job: job).counts
    #expect(counts[.queued, default: 0] == 0 && counts[.running, default: 0] == 0 && counts[.cancelled, default: 0] > 0)
    // The job is over, so watch stops by itself, exit status 0.
    #expect(waitFor(30) { !watcher.process.isRunning }, "\(watcher.output)")
    #expect(watcher.process.terminationStatus == 0 && watcher.output.contains("cancelled"), "\(watcher.output)")

    // An unknown job: a 404, exit status 2; a server that is not there: exit status 1.
    let unknown = try runFarmCapturing(["pause", "999999"] + remote)
    #expect(unknown.status == 2 && unknown.stderr == "farm: job 999999 does not exist\n")
    let nowhere = try runFarmCapturing(["jobs", "--server", "http://127.0.0.1:\(try TemporaryPostgres.freePort())", "--token", farm.admin])
    #expect(nowhere.status == 1 && nowhere.stderr.hasPrefix("farm: "))
    // The environment variables stand in for the flags.
    let fromEnvironment = try runFarmCapturing(
        ["workers", "--json"],
        environment: ProcessInfo.processInfo.environment
            .merging(["FARM_SERVER": farm.server, "FARM_TOKEN": farm.admin]) { $1 })
    #expect(fromEnvironment.status == 0 && fromEnvironment.stdout.contains("\"slow\""), "\(fromEnvironment.stderr)")

    // So does the config file; a bad line in it is one error naming the file and line.
    let config = FileManager.default.temporaryDirectory.appendingPathComponent("farm-config-\(UUID().uuidString.prefix(6))")
    defer { try? FileManager.default.removeItem(at: config) }
    func runWithConfig(_ text: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try text.write(to: config, atomically: true, encoding: .utf8)
        // FARM_CONFIG names the daemons' settings file at the same time: the CLI must not read it.
        return try runFarmCapturing(
            arguments,
            environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FARM_") }
                .merging(["FARM_CLI_CONFIG": config.path, "FARM_CONFIG": daemonSettings.path]) { $1 })
    }
    let daemonSettings = try configFile("lease-seconds: 30\nheartbeat: 2\n")
    defer { try? FileManager.default.removeItem(at: daemonSettings) }
    let fromConfig = try runWithConfig("# the test farm\nserver: \(farm.server)\ntoken: \"\(farm.admin)\"\n", ["jobs", "--json"])
    #expect(fromConfig.status == 0 && fromConfig.stdout.contains("\"id\" : \(job)"), "\(fromConfig.stderr)")
    let withCRLF = try runWithConfig("server: \(farm.server)\r\ntoken: \(farm.admin)\r\n", ["jobs", "--json"])
    #expect(withCRLF.status == 0 && withCRLF.stdout.contains("\"id\" : \(job)"), "\(withCRLF.stderr)")
    let badConfig = try runWithConfig("server: \(farm.server)\ncolour: blue\n", ["jobs"])
    #expect(
        badConfig.status == 2 && badConfig.stderr == "farm: \(config.path):2: unknown key \"colour\" (known: server, token)\n",
        "\(badConfig.stderr)")
    withExtendedLifetime((worker, watcher)) {}
}

@Test func coordinatorExitsWhenTheHTTPPortIsTaken() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let farm = try HTTPFarm()
    let port = try #require(URL(string: farm.server)?.port)
    let second = try runFarmCapturing(["coordinator", "--insecure", "--database", conninfo, "--listen", endpoint, "--http", "127.0.0.1:\(port)"])
    #expect(second.status == 1 && second.stderr.contains("the HTTP API cannot listen on 127.0.0.1:\(port)"), "\(second.stderr)")
}

@Test func eventStreamCarriesProgressAndResultsOfEveryTask() throws {
    let farm = try HTTPFarm()
    let port = try #require(Int(farm.server.split(separator: ":").last ?? ""))
    // No token: 401, and no stream.
    let refused = try EventStreamReader(port: port, path: "/v1/events", token: nil)
    #expect(waitFor(30) { refused.text.hasPrefix("HTTP/1.1 401") }, "\(refused.text)")
    refused.stop()

    let reader = try EventStreamReader(port: port, path: "/v1/events", token: farm.submit)
    defer { reader.stop() }
    #expect(waitFor(30) { reader.text.contains(": connected") }, "\(reader.text)")
    #expect(reader.text.hasPrefix("HTTP/1.1 200") && reader.text.lowercased().contains("content-type: text/event-stream"))
    let worker = try startSyntheticWorker(farm.endpoint, name: "ev", delay: 0.05)
    let spec = FileManager.default.temporaryDirectory.appendingPathComponent("events-\(UUID().uuidString.prefix(6)).yaml")
    try """
    name: events
    model: synthetic
    defaults: {steps: 4, cfg: 7, sampler: euler_a, width: 32, height: 32}
    sweep:
      prompt: ["a fox", "a castle"]
      seed: "1-2"
    """.write(to: spec, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: spec) }
    let submitted = try runFarmCapturing(["submit", spec.path, "--server", farm.server, "--token", farm.submit, "--wait"])
    #expect(submitted.status == 0, "\(submitted.stderr)\n\(farm.coordinator.output)\n\(worker.output)")
    let job = try #require(Int64(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    let store = JobStore(connection: try Connection(farm.conninfo))
    let tasks = try Set(store.testConnection.query("SELECT id FROM tasks WHERE job_id = $1", [job]).rows.map { try $0.decode("id", as: Int64.self) })
    #expect(tasks.count == 4)
    func taskIDs(_ name: String) -> Set<Int64> {
        Set(
            reader.events.filter { $0.name == name && ($0.data["job"] as? NSNumber)?.int64Value == job }
                .compactMap { ($0.data["task"] as? NSNumber)?.int64Value })
    }
    #expect(waitFor(30) { taskIDs("done") == tasks }, "\(reader.text)")
    #expect(taskIDs("progress") == tasks)
    let progress = try #require(reader.events.first { $0.name == "progress" })
    #expect(progress.data["worker"] as? String == "ev" && (progress.data["total"] as? NSNumber)?.intValue == 4)
    #expect(reader.events.allSatisfy { ($0.data["job"] as? NSNumber)?.int64Value == job })
}

/// Every limit of a submission answers 400 naming the field, over HTTP and through the CLI, and stores nothing.
@Test func submissionLimitsAre400sNamingTheField() throws {
    let farm = try HTTPFarm()
    let store = JobStore(connection: try Connection(farm.conninfo))
    let limit = Limits().maxTasksPerJob
    let cases: [(what: String, spec: String, field: String)] = [
        (
            "a million and one aliased items", "model: m\nitems:\n- &a {prompt: fox}\n" + String(repeating: "- *a\n", count: limit),
            "items"
        ),
        (
            "items and a sweep past the limit", "model: m\nitems: [{prompt: a}, {prompt: b}]\nsweep: {prompt: [c], seed: 1-\(limit - 1)}",
            "sweep"
        ),
        ("a megabyte model name", "model: \(String(repeating: "m", count: 1 << 20))\nitems: [{prompt: a}]", "model"),
        ("a long sampler", "model: m\nitems: [{prompt: a, sampler: \(String(repeating: "s", count: 300))}]", "sampler"),
        ("a NUL in a prompt", "model: m\nitems: [{prompt: \"a\\0b\"}]", "prompt"),
        ("a NUL in a model", "model: \"m\\0\"\nitems: [{prompt: a}]", "model"),
        ("a NUL in the name", "name: \"x\\0y\"\nmodel: m\nitems: [{prompt: a}]", "name"),
        ("a long name", "name: \(String(repeating: "n", count: 300))\nmodel: m\nitems: [{prompt: a}]", "name"),
        ("a huge priority", "model: m\npriority: 99999999999\nitems: [{prompt: a}]", "priority"),
        ("a negative priority past the range", "model: m\npriority: -5000\nitems: [{prompt: a}]", "priority"),
    ]
    let jobsBefore = try store.testConnection.query("SELECT count(*) AS n FROM jobs").single().decode("n", as: Int.self)
    for item in cases {
        let answer = try httpRequest("POST", "\(farm.server)/v1/jobs", token: farm.admin, body: Data(item.spec.utf8))
        let body = (try? jsonObject(answer.body)) ?? [:]
        #expect(
            answer.status == 400 && body["field"] as? String == item.field,
            "\(item.what): \(answer.status) \(String(decoding: answer.body.prefix(300), as: UTF8.self))")
    }
    // The CLI says the same in one line and exits 2.
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID().uuidString.prefix(6)).yaml")
    defer { try? FileManager.default.removeItem(at: file) }
    for item in cases where item.spec.utf8.count < 10_000 {
        try item.spec.write(to: file, atomically: true, encoding: .utf8)
        let cli = try runFarmCapturing(["submit", file.path, "--server", farm.server, "--token", farm.admin])
        #expect(
            cli.status == 2 && cli.stderr.hasPrefix("farm: ") && cli.stderr.contains(item.field)
                && cli.stderr.split(separator: "\n").count == 1, "\(item.what): \(cli.stderr)")
    }
    #expect(try store.testConnection.query("SELECT count(*) AS n FROM jobs").single().decode("n", as: Int.self) == jobsBefore)

    // A submit token may not ask for a priority above the coordinator's --max-submit-priority (0 here); an admin may.
    let urgent = Data("model: m\npriority: 5\nitems: [{prompt: a}]".utf8)
    let bySubmitter = try httpRequest("POST", "\(farm.server)/v1/jobs", token: farm.submit, body: urgent)
    #expect(
        bySubmitter.status == 400 && (try? jsonObject(bySubmitter.body))?["field"] as? String == "priority",
        "\(String(decoding: bySubmitter.body, as: UTF8.self))")
    #expect(try httpRequest("POST", "\(farm.server)/v1/jobs", token: farm.admin, body: urgent).status == 201)
    #expect(try store.testConnection.query("SELECT count(*) AS n FROM jobs").single().decode("n", as: Int.self) == jobsBefore + 1)
}

/// A stream opened with a token that is later revoked ends; another stream goes on.
@Test func revokingATokenEndsItsEventStreams() throws {
    let farm = try HTTPFarm()
    let port = try #require(Int(farm.server.split(separator: ":").last ?? ""))
    let store = JobStore(connection: try Connection(farm.conninfo))
    let (id, token) = try store.createToken(role: .submit, name: "watcher")
    let doomed = try EventStreamReader(port: port, path: "/v1/events", token: token)
    let other = try EventStreamReader(port: port, path: "/v1/events", token: farm.submit)
    defer {
        doomed.stop()
        other.stop()
    }
    #expect(waitFor(30) { doomed.text.contains(": connected") && other.text.contains(": connected") }, "\(doomed.text)")
    #expect(try store.revokeToken(id: id))
    // The stream's body ends: its last chunk arrives; the other stream is still open. The server looks every 2 s;
    // the deadline is wide because a loaded CI machine once took more than 15 s, and only "it ends" is the claim.
    let revoked = Date()
    let ended = waitFor(60) { doomed.text.hasSuffix("\r\n0\r\n\r\n") }
    #expect(
        ended,
        """
        the revoked token's stream is still open after \(Int(Date().timeIntervalSince(revoked))) s: \(doomed.text.suffix(200))
        coordinator: \(farm.coordinator.output.suffix(3000))
        """)
    #expect(!other.text.hasSuffix("\r\n0\r\n\r\n") && !other.isClosed)
    withExtendedLifetime(farm) {}
}
