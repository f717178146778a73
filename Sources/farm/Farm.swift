// The farm executable: thin commands over every module (the daemons, render, submit, admin). May import all of them.

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
import Tensors
import Worker
import ZeroMQ

/// The one binary of DiffusionFarm: daemons, admin commands and local rendering.
@main
struct Farm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "farm",
        abstract: "DiffusionFarm: a Stable Diffusion render farm.",
        version: "DiffusionFarm \(Farm.release) (wire protocol \(WireMessage.protocolVersion))",
        subcommands: [
            Render.self, Upscale.self, Migrate.self, CoordinatorCommand.self, WorkerCommand.self, Submit.self, Fetch.self,
            Jobs.self, JobCommand.self, Cancel.self, Pause.self, Resume.self, Retry.self, Workers.self,
            Drain.self, Cordon.self, Uncordon.self, Watch.self, Tokens.self, Quotas.self, Prune.self, Models.self,
            Status.self, Keys.self, Bench.self, Devices.self,
        ])

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
        print(
            applied.isEmpty
                ? "schema is up to date (\(migrator.migrations.count) migrations)"
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

    @OptionGroup var results: ResultOptions

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

    @Option(
        help:
            "The folder of the model store's files (farm models add), served to workers at /v1/models/{sha256} with --http (default: ~/.local/share/farm/models)."
    )
    var modelStore: String?

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
        settings.imageDirectory = results.imageDir
        // Metrics are made when their owners are: the backend must exist before the coordinator does.
        let metrics = http == nil ? nil : FarmMetrics.bootstrap()
        let server = try CoordinatorServer(configuration: settings, conninfo: conninfo, context: ZMQContext())
        // The HTTP API runs on its own threads next to the ZeroMQ loop; failing to bind ends the coordinator.
        var api: FarmHTTPServer?
        if let http, let (host, port) = FarmHTTPServer.parseAddress(http) {
            api = FarmHTTPServer(
                host: host, port: port, conninfo: conninfo, events: server.events, metrics: metrics,
                maxSubmitPriority: maxSubmitPriority, modelStore: try ModelDirectory(path: modelStore ?? ModelDirectory.defaultPath))
            try api?.start()
        }
        defer { api?.stop() }
        // Expiry and notifications run beside the loop, on their own connections.
        let housekeeper = Housekeeper(conninfo: conninfo, configuration: results.housekeeping, logger: Logger(label: "farm.coordinator.housekeeping"))
        housekeeper.start()
        defer { housekeeper.stop() }
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

    @Option(
        help:
            "Serve this worker's metrics in the Prometheus text format at http://HOST:PORT/metrics; the worker exits with status 1 if it cannot listen there."
    )
    var metrics: String?

    @Option(help: "The coordinator's CURVE public key (or its key file); needed with --curve-key.")
    var coordinatorKey: String?

    @Option(name: [.customLong("name"), .customLong("id")], help: "A stable name for this worker (default: the host name).")
    var name: String?

    @Option(help: "Tasks this worker takes at once.")
    var slots = 1

    @Option(
        name: .customLong("tag"),
        help: "A tag of this worker (repeatable): tasks whose spec says `require: [TAG, …]` go only to workers with all of them.")
    var tags: [String] = []

    @Option(help: "Stop after rendering this many tasks (for scripts and tests).")
    var exitAfter: Int?

    @Option(help: "A folder of models (diffusers folders, .safetensors, .ckpt), each named by its file name.")
    var models: String?

    @Option(
        help: "A folder of LoRAs (by file stem, subfolders included) that tasks name in <lora:NAME:W> tags or `loras`; announced to the coordinator.")
    var loraDir: String?

    @Option(help: "A folder of textual-inversion embeddings that prompts name by file stem.")
    var embeddingsDir: String?

    @Option(
        help:
            "diffusion (the engine: the bundled demo model and those of --models), test-pattern (the default without --models), or synthetic: a TEST AND BENCHMARK TOOL that returns a generated PNG depending on the parameters after --synthetic-delay seconds."
    )
    var engine: String?

    @Option(help: "Seconds each synthetic task takes.")
    var syntheticDelay: Double = 0.5

    @Option(help: "Memory for loaded models in MB; least recently used models are unloaded beyond it (default: half the RAM).")
    var modelCacheMb: Int?

    @Option(
        help:
            "The coordinator's HTTP API (http://HOST:PORT): store models a task names (farm models add) that this worker lacks are fetched from it into --model-cache and verified by SHA-256."
    )
    var modelServer: String?

    @Option(help: "An API token (any role) for --model-server; also FARM_MODEL_TOKEN or the config file, so it stays off the command line.")
    var modelToken: String?

    @Option(help: "The folder fetched store models are kept in (default: ~/.cache/farm/models).")
    var modelCache: String?

    @Option(help: "Disk space for fetched store models in GB; the least recently used go beyond it, never one in use (default: no limit).")
    var modelCacheGb: Double?

    @Option(
        help:
            "The largest image (width × height) this worker takes, announced to the coordinator. Default: with the diffusion engine, what its memory allows beside its models (logged at start); otherwise the farm's limit. A value above the estimate is taken as given (with a warning)."
    )
    var maxPixels: Int?

    @Option(
        help: "Where the diffusion engine's networks run: cpu, or vulkan[:N] (a Vulkan GPU; farm devices lists them). Announced to the coordinator.")
    var device = "cpu"

    func validate() throws {
        guard ComputeDevice(device) != nil else { throw ValidationError("--device \(device): expected cpu, vulkan or vulkan:N") }
        guard slots >= 1 && slots <= 64 else { throw ValidationError("--slots must be 1...64, got \(slots)") }
        if let bad = tags.first(where: { $0.isEmpty || $0.utf8.count > Limits().maxNameBytes || $0.contains(",") }) {
            throw ValidationError("--tag must be 1...\(Limits().maxNameBytes) bytes without commas, got \"\(bad.prefix(40))\"")
        }
        if let engine, !["diffusion", "test-pattern", "synthetic"].contains(engine) {
            throw ValidationError("--engine must be diffusion, test-pattern or synthetic, got \(engine)")
        }
        guard syntheticDelay >= 0 && syntheticDelay <= 3600 else { throw ValidationError("--synthetic-delay must be 0...3600 seconds") }
        if security.curveKey != nil && coordinatorKey == nil {
            throw ValidationError("--curve-key needs --coordinator-key (the coordinator's public key)")
        }
        if let metrics, FarmHTTPServer.parseAddress(metrics) == nil { throw ValidationError("--metrics must be HOST:PORT, got \(metrics)") }
        if let modelServer, URL(string: modelServer).map({ ["http", "https"].contains($0.scheme ?? "") && $0.host != nil }) != true {
            throw ValidationError("--model-server must be an http(s) URL such as http://coordinator:8080, got \(modelServer)")
        }
        if let modelCacheGb, !(modelCacheGb > 0) { throw ValidationError("--model-cache-gb must be above 0, got \(modelCacheGb)") }
        if modelServer == nil && (modelCache != nil || modelCacheGb != nil || modelToken != nil) {
            throw ValidationError("--model-cache, --model-cache-gb and --model-token need --model-server")
        }
        if let maxPixels, maxPixels < 64 * 64 || maxPixels > Int(Int32.max) {
            throw ValidationError("--max-pixels must be \(64 * 64)...\(Int32.max) (width × height), got \(maxPixels)")
        }
        for (flag, folder) in [("--lora-dir", loraDir), ("--embeddings-dir", embeddingsDir)] {
            var isFolder: ObjCBool = false
            if let folder, !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder.boolValue {
                throw ValidationError("\(flag) \(folder): no such folder")
            }
        }
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
        settings.tags = tags
        if let keys = try security.keyPair(), let coordinatorKey {
            settings.curve = (try readPublicKey(coordinatorKey), keys)
        }
        let renderer = try makeRenderer(logger: logger)
        settings.maxPixels = renderer.maxPixels
        if let modelServer, let server = URL(string: modelServer.hasSuffix("/") ? String(modelServer.dropLast()) : modelServer) {
            let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
            settings.modelSource = ModelSource(
                server: server, token: modelToken, cacheFolder: URL(fileURLWithPath: modelCache ?? home + "/.cache/farm/models"),
                cacheBudgetBytes: modelCacheGb.map { Int64($0 * 1e9) })
        }
        let daemon = try WorkerDaemon(configuration: settings, renderer: renderer.renderer, context: ZMQContext())
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

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a job's tasks by state; --wait blocks until it finishes.")

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "The job's id.")
    var job: Int64

    @Option(help: "Wait up to this many seconds for the job to finish.")
    var wait: Double = 0

    func run() throws {
        let store = JobStore(connection: try database.connect())
        let deadline = ContinuousClock.now.adding(seconds: wait)
        var progress = try store.progress(job: job)
        while !progress.isFinished && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            progress = try store.progress(job: job)
        }
        let parts = TaskState.allCases.map { "\($0.rawValue)=\(progress.counts[$0, default: 0])" }
        print("job \(job): \(parts.joined(separator: " "))")
        if wait > 0 && !progress.isFinished { throw ExitCode(2) }
    }
}
