import ArgumentParser
import Coordinator
import FarmModel
import Foundation
import HTTPAPI
import Imaging
import JobSpec
import JobStore
import Logging
import Postgres
import Worker
import ZeroMQ

/// The one binary of DiffusionFarm: daemons, admin commands and local rendering.
@main
struct Farm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "farm",
        abstract: "DiffusionFarm: a Stable Diffusion render farm.",
        version: "DiffusionFarm \(Farm.release) (wire protocol \(WireMessage.protocolVersion))",
        subcommands: [Render.self, Migrate.self, CoordinatorCommand.self, WorkerCommand.self, Submit.self, Fetch.self,
                      Jobs.self, JobCommand.self, Cancel.self, Pause.self, Resume.self, Retry.self, Workers.self,
                      Drain.self, Cordon.self, Uncordon.self, Watch.self, Tokens.self,
                      Status.self, Keys.self, Bench.self])

    /// This build's release number, as `farm --version` prints it.
    static let release = "0.3.0"

    /// Runs the command; any bad input ends with one line on stderr and exit status 2
    /// (help and explicit exit codes behave as ArgumentParser defines them).
    static func main() {
        // Commands print their output; line buffering keeps it current when redirected to a file
        // (daemons log through their own unbuffered handler, FarmLogging.swift).
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var arguments = Array(CommandLine.arguments.dropFirst())
            // Daemons also take their settings from FARM_… variables and a config file.
            let daemons: [ParsableCommand.Type] = [CoordinatorCommand.self, WorkerCommand.self]
            if let name = arguments.first, let daemon = daemons.first(where: { $0.configuration.commandName == name }) {
                let settings = try DaemonSettings(Array(arguments.dropFirst()), for: daemon, environment: ProcessInfo.processInfo.environment)
                arguments = [name] + settings.arguments
                if settings.printConfig {
                    _ = try parseAsRoot(arguments)  // the same validation as a start
                    print(settings.report.joined(separator: "\n"))
                    return
                }
            }
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch let error as RemoteError {
            FileHandle.standardError.write(Data("farm: \(error.message)\n".utf8))
            Foundation.exit(error.exitCode)
        } catch let error as HTTPServerStartError {
            FileHandle.standardError.write(Data("farm: \(error.description)\n".utf8))
            Foundation.exit(1)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            let message = Farm.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("farm: \(message)\n".utf8))
            Foundation.exit(2)
        }
    }
}

/// Options shared by every command that talks to the database directly.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "libpq connection string or URI (default: the PG* environment variables).")
    var database: String?

    /// Connects, turning libpq's error into one line for the user.
    func connect() throws -> Connection {
        do {
            return try Connection(database ?? ProcessInfo.processInfo.environment["FARM_DATABASE"])
        } catch let error as PostgresError {
            throw ValidationError("\(error.message) (pass --database URL or set PGHOST/PGPORT/PGDATABASE)")
        }
    }
}

/// Installs signal handlers so daemons stop cleanly on SIGINT/SIGTERM.
enum Shutdown {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    static func install() {
        signal(SIGINT) { _ in Shutdown.requested += 1 }
        signal(SIGTERM) { _ in Shutdown.requested += 1 }
    }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the database migrations that are not yet applied.")

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        let connection = try database.connect()
        let migrator = try Migrator(folder: Migrator.locateFolder())
        let applied = try migrator.apply(to: connection)
        print(applied.isEmpty ? "schema is up to date (\(migrator.migrations.count) migrations)"
                              : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
    }
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator", abstract: "Run the coordinator daemon: hand queued tasks to workers.")

    @OptionGroup var database: DatabaseOptions

    @OptionGroup var settings: DaemonSettingsOptions

    @OptionGroup var logging: LoggingOptions

    @OptionGroup var security: LinkSecurityOptions

    @Option(help: "ZeroMQ endpoint that workers connect to.")
    var listen = "tcp://127.0.0.1:5555"

    @Option(help: "Seconds a task's lease lasts without progress.")
    var leaseSeconds: Double = 60

    @Option(help: "Seconds between heartbeats each way.")
    var heartbeat: Double = 1

    @Option(help: "Heartbeats a worker may miss before it is declared lost and its tasks requeued.")
    var missedHeartbeats = 5

    @Option(help: "Serve the JSON API (/v1) on HOST:PORT too; the coordinator exits with status 1 if it cannot listen there.")
    var http: String?

    @Option(help: "The highest priority a submit token's job may ask for (admin tokens: any in the farm's range).")
    var maxSubmitPriority = 0

    func validate() throws {
        guard heartbeat > 0 && heartbeat <= 60 else { throw ValidationError("--heartbeat must be in (0, 60] seconds") }
        guard Limits().priorities.contains(maxSubmitPriority) else {
            throw ValidationError("--max-submit-priority must be \(Limits().priorities.lowerBound)...\(Limits().priorities.upperBound)")
        }
        guard missedHeartbeats >= 1 && missedHeartbeats <= 100 else { throw ValidationError("--missed-heartbeats must be 1...100") }
        guard leaseSeconds >= 1 else { throw ValidationError("--lease-seconds must be at least 1") }
        if let http, FarmHTTPServer.parseAddress(http) == nil { throw ValidationError("--http must be HOST:PORT, got \(http)") }
    }

    func run() throws {
        Shutdown.install()
        logging.bootstrap()
        let logger = Logger(label: "farm.coordinator")
        let conninfo = database.database ?? ProcessInfo.processInfo.environment["FARM_DATABASE"]
        try Migrator(folder: Migrator.locateFolder()).apply(to: try database.connect())
        var settings = CoordinatorConfiguration(listen: listen)
        settings.curveSecretKey = try security.keyPair()?.secretKey
        settings.leaseSeconds = leaseSeconds
        settings.heartbeatSeconds = heartbeat
        settings.missedHeartbeats = missedHeartbeats
        // Metrics are made when their owners are: the backend must exist before the coordinator does.
        let metrics = http == nil ? nil : FarmMetrics.bootstrap()
        let server = try CoordinatorServer(configuration: settings, conninfo: conninfo, context: ZMQContext())
        // The HTTP API runs on its own threads next to the ZeroMQ loop; failing to bind ends the coordinator.
        var api: FarmHTTPServer?
        if let http, let (host, port) = FarmHTTPServer.parseAddress(http) {
            api = FarmHTTPServer(host: host, port: port, conninfo: conninfo, events: server.events, metrics: metrics,
                                 maxSubmitPriority: maxSubmitPriority)
            try api?.start()
        }
        defer { api?.stop() }
        logger.info("coordinator listening on \(server.endpoint)", metadata: ["endpoint": "\(server.endpoint)"])
        try server.run { Shutdown.requested != 0 }
        logger.info("coordinator stopped")
    }
}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run a worker daemon: render the tasks a coordinator hands out.",
        discussion: "SIGTERM or SIGINT drains: the worker finishes what it holds and exits; a second one abandons the task in hand (it is requeued).")

    @Option(help: "The coordinator's ZeroMQ endpoint; repeat to list fail-over coordinators.")
    var coordinator: [String] = []

    @OptionGroup var settings: DaemonSettingsOptions

    @OptionGroup var logging: LoggingOptions

    @OptionGroup var security: LinkSecurityOptions

    @Option(help: "Serve this worker's metrics in the Prometheus text format at http://HOST:PORT/metrics; the worker exits with status 1 if it cannot listen there.")
    var metrics: String?

    @Option(help: "The coordinator's CURVE public key (or its key file); needed with --curve-key.")
    var coordinatorKey: String?

    @Option(name: [.customLong("name"), .customLong("id")], help: "A stable name for this worker (default: the host name).")
    var name: String?

    @Option(help: "Tasks this worker takes at once.")
    var slots = 1

    @Option(help: "Stop after rendering this many tasks (for scripts and tests).")
    var exitAfter: Int?

    @Option(help: "A folder of models (diffusers folders, .safetensors, .ckpt), each named by its file name.")
    var models: String?

    @Option(help: "diffusion (the engine: the bundled demo model and those of --models), test-pattern (the default without --models), or synthetic: a TEST AND BENCHMARK TOOL that returns a generated PNG depending on the parameters after --synthetic-delay seconds.")
    var engine: String?

    @Option(help: "Seconds each synthetic task takes.")
    var syntheticDelay: Double = 0.5

    @Option(help: "Memory for loaded models in MB; least recently used models are unloaded beyond it (default: half the RAM).")
    var modelCacheMb: Int?

    func validate() throws {
        guard slots >= 1 && slots <= 64 else { throw ValidationError("--slots must be 1...64, got \(slots)") }
        if let engine, !["diffusion", "test-pattern", "synthetic"].contains(engine) {
            throw ValidationError("--engine must be diffusion, test-pattern or synthetic, got \(engine)")
        }
        guard syntheticDelay >= 0 && syntheticDelay <= 3600 else { throw ValidationError("--synthetic-delay must be 0...3600 seconds") }
        if security.curveKey != nil && coordinatorKey == nil { throw ValidationError("--curve-key needs --coordinator-key (the coordinator's public key)") }
        if let metrics, FarmHTTPServer.parseAddress(metrics) == nil { throw ValidationError("--metrics must be HOST:PORT, got \(metrics)") }
    }

    func run() throws {
        Shutdown.install()
        logging.bootstrap()
        let logger = Logger(label: "farm.worker")
        // Metrics are made when their owners are: the backend must exist before the daemon does.
        var metricsServer: FarmHTTPServer?
        if let metrics, let (host, port) = FarmHTTPServer.parseAddress(metrics) {
            metricsServer = FarmHTTPServer(metricsOn: host, port: port, metrics: FarmMetrics.bootstrap())
            try metricsServer?.start()
        }
        defer { metricsServer?.stop() }
        var settings = WorkerConfiguration(coordinators: coordinator.isEmpty ? ["tcp://127.0.0.1:5555"] : coordinator, workerID: name)
        settings.slots = slots
        if let keys = try security.keyPair(), let coordinatorKey {
            settings.curve = (try readPublicKey(coordinatorKey), keys)
        }
        let renderer: Renderer
        switch engine ?? (models == nil ? "test-pattern" : "diffusion") {
        case "synthetic": renderer = TestPatternRenderer(models: ["synthetic"], delay: syntheticDelay)
        case "test-pattern": renderer = TestPatternRenderer()
        default: renderer = try DiffusionRenderer(modelsFolder: models.map { URL(fileURLWithPath: $0) },
                                                  memoryBudgetBytes: modelCacheMb.map { $0 << 20 })
        }
        let daemon = try WorkerDaemon(configuration: settings, renderer: renderer, context: ZMQContext())
        daemon.cancelCheck = { Shutdown.requested > 1 }
        var signals = 0
        try daemon.run {
            if Shutdown.requested > 0 && signals == 0 {
                signals = 1
                daemon.draining = true
                logger.notice("draining: finishing the task in hand, taking no more")
            }
            // A second signal abandons the task in hand (its lease expires and it is requeued) and exits.
            if Shutdown.requested > 1 { return true }
            return daemon.isDrained || exitAfter.map { daemon.rendered >= $0 } ?? false
        }
        logger.info("worker stopped after \(daemon.rendered) task(s)", metadata: ["rendered": .stringConvertible(daemon.rendered)])
    }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queue a job: a spec file (YAML/JSON with defaults, items and sweeps; JSONL; CSV; text, one prompt per line), or one prompt over a range of seeds.",
        discussion: """
            Flags such as --model, --width or --steps fill what a spec leaves out. Example YAML:
              name: foxes
              model: tiny-sd
              defaults: {steps: 10, cfg: 7, sampler: euler_a, width: 32, height: 32}
              sweep:
                prompt: ["a red fox in the snow", "a castle at night"]
                seed: "1-4"
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Argument(help: "A job spec file (.yaml, .yml, .json, .jsonl, .csv, or text).")
    var spec: String?

    @Flag(help: "Print how many tasks the spec makes and the first few; submit nothing.")
    var dryRun = false

    @Flag(help: "Follow the job until it finishes.")
    var wait = false

    @Option(help: "The job's name.")
    var name: String?

    @Option(help: "The prompt to draw (without a spec file).")
    var prompt: String?

    @Option(help: "What to steer away from.")
    var negative = ""

    @Option(help: "The model to draw with (a name the workers have; default test-pattern without a spec).")
    var model: String?

    @Option(help: "Sampler name (see farm render --help).")
    var sampler: String?

    @Option(help: "Classifier-free guidance scale.")
    var cfg: Double?

    @Option(help: "img2img/inpainting/outpainting source image (PNG), stored once with the job.")
    var initImage: String?

    @Option(help: "How much of the init image to repaint (0, 1].")
    var strength: Double?

    @Option(help: "Inpainting mask (PNG, white = repaint).")
    var mask: String?

    @Option(help: "Mask blur in pixels.")
    var maskBlur: Double?

    @Option(parsing: .unconditional, help: "Outpaint: L,R,T,B pixels to add.")
    var outpaint: String?

    @Option(help: "A ControlNet by the workers' model name; repeat for several.")
    var controlnet: [String] = []

    @Option(help: "The control image (PNG) of each --controlnet.")
    var controlImage: [String] = []

    @Option(help: "The scale of each --controlnet (default 1).")
    var controlScale: [Double] = []

    @Option(help: "Number of images (seeds seed, seed+1, ...).")
    var count = 1

    @Option(help: "The first seed.")
    var seed: UInt64 = 0

    @Option(help: "Image width in pixels (default: the model's native size).")
    var width: Int?

    @Option(help: "Image height in pixels (default: the model's native size).")
    var height: Int?

    @Option(help: "Denoising steps (default 20).")
    var steps: Int?

    func validate() throws {
        guard count >= 1 && count <= Limits().maxTasksPerJob else {
            throw ValidationError("--count must be 1...\(Limits().maxTasksPerJob), got \(count)")
        }
    }

    func run() throws {
        if let spec {
            try submitSpec(spec)
            return
        }
        guard let prompt else { throw ValidationError("give a spec file or --prompt") }
        if try remote.client() != nil { throw ValidationError("with --server, give a spec file (--prompt jobs go to the database)") }
        let store = JobStore(connection: try database.connect())
        func stored(_ path: String?, _ flag: String) throws -> String? {
            guard let path else { return nil }
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(flag) \(path): cannot read the file") }
            return try store.storeBlob(data)
        }
        guard controlImage.count == controlnet.count else { throw ValidationError("give one --control-image per --controlnet") }
        // A mask of another size than its image is refused from the headers, before anything is stored.
        if let mask, let initImage, let maskData = FileManager.default.contents(atPath: mask),
           let imageData = FileManager.default.contents(atPath: initImage),
           let maskSize = PNGImage.declaredSize(of: maskData), let imageSize = PNGImage.declaredSize(of: imageData), maskSize != imageSize {
            throw ValidationError("--mask is \(maskSize.width)x\(maskSize.height) but --init-image is \(imageSize.width)x\(imageSize.height)")
        }
        let initHash = try stored(initImage, "--init-image"), maskHash = try stored(mask, "--mask")
        let controls = try zip(controlnet, controlImage).enumerated().map { index, pair in
            TaskParameters.Control(model: pair.0, image: try stored(pair.1, "--control-image")!,
                                   scale: index < controlScale.count ? controlScale[index] : 1)
        }
        let extents = try outpaint.map { text -> [Int] in
            let extents = try Render.extents(text)
            return [extents.left, extents.right, extents.top, extents.bottom]
        }
        let tasks = (0..<count).map { offset in
            var task = TaskParameters(prompt: prompt, negativePrompt: negative, model: model ?? "test-pattern", width: width,
                                      height: height, steps: steps ?? 20, cfgScale: cfg ?? 7.5, sampler: sampler ?? "euler_a",
                                      seed: seed &+ UInt64(offset))
            task.initImage = initHash
            task.mask = maskHash
            task.strength = strength
            task.maskBlur = maskBlur
            task.outpaint = extents
            task.controlnets = controls.isEmpty ? nil : controls
            return task
        }
        do {
            let job = try store.enqueue(name: name ?? "job", model: model ?? "test-pattern", tasks: tasks)
            print(job)
            if wait { try follow(job, store: store) }
        } catch let failure as ValidationFailure {
            throw ValidationError(failure.description)
        }
    }

    /// Flags given on the command line, as spec field overrides.
    var overrides: [String: String] {
        var fields: [String: String] = [:]
        fields["name"] = name
        fields["model"] = model
        fields["sampler"] = sampler
        fields["cfg"] = cfg.map { String($0) }
        fields["width"] = width.map(String.init)
        fields["height"] = height.map(String.init)
        fields["steps"] = steps.map(String.init)
        if !negative.isEmpty { fields["negative"] = negative }
        return fields
    }

    private func submitSpec(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw ValidationError("\(path): cannot read the file")
        }
        guard (attributes[.size] as? Int ?? 0) <= 256 << 20 else { throw ValidationError("\(path): larger than 256 MB") }
        let text = try String(contentsOf: url, encoding: .utf8)
        let job: JobSpec
        do { job = try JobSpec.parse(text, file: path, overrides: overrides) } catch let error as JobSpecError {
            throw ValidationError(error.description)
        }
        if dryRun {
            print("\(job.tasks.count) task(s) for job \"\(job.name)\" (model \(job.model))")
            for (index, task) in job.tasks.prefix(5).enumerated() {
                print("  \(index): \"\(task.prompt.prefix(60))\" seed \(task.seed), \(task.width.map(String.init) ?? "native")x\(task.height.map(String.init) ?? "native"), \(task.steps) steps, cfg \(task.cfgScale), \(task.sampler), \(task.model)")
            }
            if job.tasks.count > 5 { print("  …") }
            return
        }
        if let client = try remote.client() {
            let format = ["yaml": "yaml", "yml": "yaml", "json": "json", "jsonl": "jsonl", "csv": "csv"][url.pathExtension.lowercased()] ?? "txt"
            let query = [URLQueryItem(name: "format", value: format)]
                + overrides.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            let answer = try client.json("POST", "jobs", query: query, body: Data(text.utf8)) as? [String: Any] ?? [:]
            let id = Int64(intValue(answer["id"]))
            print(id)
            if wait {
                try follow(id) {
                    let counts = (try client.json("GET", "jobs/\(id)") as? [String: Any])?["counts"] as? [String: Any] ?? [:]
                    return Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, intValue(counts[$0.rawValue])) })
                }
            }
            return
        }
        let store = JobStore(connection: try database.connect())
        let id = try store.enqueue(name: job.name, model: job.model, maxAttempts: job.maxAttempts, priority: job.priority, tasks: job.tasks)
        print(id)
        if wait { try follow(id, store: store) }
    }

    private func follow(_ job: Int64, store: JobStore) throws {
        try follow(job) { try store.progress(job: job).counts }
    }

    /// Prints a job's counts to standard error whenever they change, until no task will run again.
    private func follow(_ job: Int64, counts: () throws -> [TaskState: Int]) throws {
        var last = ""
        while true {
            let progress = JobProgress(counts: try counts().filter { $0.value > 0 })
            let line = TaskState.allCases.map { "\($0.rawValue)=\(progress.counts[$0, default: 0])" }.joined(separator: " ")
            if line != last { FileHandle.standardError.write(Data("job \(job): \(line)\n".utf8)); last = line }
            if progress.isFinished { return }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a job's tasks by state; --wait blocks until it finishes.")

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "The job's id.")
    var job: Int64

    @Option(help: "Wait up to this many seconds for the job to finish.")
    var wait: Double = 0

    func run() throws {
        let store = JobStore(connection: try database.connect())
        let deadline = Date().addingTimeInterval(wait)
        var progress = try store.progress(job: job)
        while !progress.isFinished && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            progress = try store.progress(job: job)
        }
        let parts = TaskState.allCases.map { "\($0.rawValue)=\(progress.counts[$0, default: 0])" }
        print("job \(job): \(parts.joined(separator: " "))")
        if wait > 0 && !progress.isFinished { throw ExitCode(2) }
    }
}

struct Fetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a job's finished images as {job}-{index}-{seed}.png; files already there are skipped, so it resumes.")

    @OptionGroup var database: DatabaseOptions

    @OptionGroup var remote: RemoteOptions

    @Argument(help: "The job's id.")
    var job: Int64

    @Option(help: "Folder to write the PNG files into.")
    var out = "."

    func run() throws {
        let folder = URL(fileURLWithPath: out)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw ValidationError("--out \(out) is a file; give a folder to write the images into")
        }
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("--out \(out): cannot make the folder (\((error as NSError).localizedDescription))")
        }
        func file(_ index: Int, _ seed: String) -> URL { folder.appendingPathComponent("\(job)-\(index)-\(seed).png") }
        var written = 0, skipped = 0
        if let client = try remote.client() {
            // Over HTTP: list the images, then download only the ones not yet on disk.
            guard let list = try client.json("GET", "jobs/\(job)/images") as? [[String: Any]] else {
                throw RemoteError(message: "the server's image list is not a JSON array", status: nil)
            }
            for entry in list {
                let target = file(intValue(entry["index"]), "\(entry["seed"].map { "\($0)" } ?? "0")")
                if FileManager.default.fileExists(atPath: target.path) { skipped += 1; continue }
                try client.send("GET", "tasks/\(intValue(entry["task"]))/image").write(to: target, options: .atomic)
                written += 1
            }
        } else {
            let store = JobStore(connection: try database.connect())
            guard try store.jobExists(job) else { throw ValidationError("job \(job) does not exist") }
            for image in try store.images(job: job) {
                let target = file(image.index, String(image.seed))
                if FileManager.default.fileExists(atPath: target.path) { skipped += 1; continue }
                try image.png.write(to: target, options: .atomic)
                written += 1
            }
        }
        print("wrote \(written) image(s) to \(folder.path)" + (skipped > 0 ? " (\(skipped) already there)" : ""))
    }
}
