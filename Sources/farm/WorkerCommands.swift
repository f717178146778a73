import ArgumentParser
import FarmModel
import Foundation
import JobStore
import Logging
import Tensors
import Worker

/// `farm workers`: the registry.
struct Workers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List workers: name, host, device, state, loaded model, current task and step, it/s, last heartbeat, failures.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let workers = try remote.ask([WorkerRecord].self, "workers", database: database) { try $0.workers() }
        if json { return try printJSON(workers) }
        printTable(
            ["NAME", "HOST", "DEVICE", "STATE", "LOADED", "TASK", "STEP", "IT/S", "RUNNING", "LAST HEARTBEAT", "FAILURES"],
            workers.map { worker in
                let current = worker.current
                let speed = current?.stepsPerSecond.map { String(format: "%.2f", $0) } ?? "-"
                return [
                    worker.name, worker.host, worker.device, worker.state.rawValue, worker.loadedModel.isEmpty ? "-" : worker.loadedModel,
                    current.map { "\($0.id) (job \($0.job))" } ?? "-", current.map { "\($0.step)/\($0.totalSteps)" } ?? "-", speed,
                    "\(worker.running)/\(worker.slots)", "\(worker.secondsSinceHeartbeat) s ago", "\(worker.failures)",
                ]
            })
    }
}

/// The worker a `farm drain|cordon|uncordon WORKER` command acts on, and how it reaches it.
struct WorkerControl: ActionTarget {
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The worker's name.") var worker: String

    /// Applies `action` to the worker through the HTTP API or the database, and prints the state it set.
    func apply(_ action: OperatorAction) throws {
        let name = worker.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? worker
        _ = try remote.ask(
            WorkerActionReply.self, "workers/\(name)/\(action.rawValue)", method: "POST", database: database,
            missing: "worker \(worker) is not known to the farm"
        ) { try $0.setWorkerState(worker, action.status) ? WorkerActionReply(name: worker, state: action.status) : nil }
        print("worker \(worker): \(action.status.rawValue)")
    }
}

/// `farm drain WORKER`.
struct Drain: ActionCommand {
    static let configuration = CommandConfiguration(abstract: "Drain a worker: it finishes what it holds, takes no more, and exits.")
    static let action = OperatorAction.drain
    @OptionGroup var target: WorkerControl
}

/// `farm cordon WORKER`.
struct Cordon: ActionCommand {
    static let configuration = CommandConfiguration(abstract: "Cordon a worker: it stays connected but gets no new tasks.")
    static let action = OperatorAction.cordon
    @OptionGroup var target: WorkerControl
}

/// `farm uncordon WORKER`.
struct Uncordon: ActionCommand {
    static let configuration = CommandConfiguration(abstract: "Give a cordoned or drained worker work again.")
    static let action = OperatorAction.uncordon
    @OptionGroup var target: WorkerControl
}

extension WorkerCommand {
    /// The renderer `--engine` asks for, and the pixel limit the worker announces: `--max-pixels` as given, else
    /// for the diffusion engine the estimate from its memory and models (logged with what it came from), else none.
    func makeRenderer(logger: Logger) throws -> (renderer: Renderer, maxPixels: Int?) {
        switch engine ?? (models == nil ? "test-pattern" : "diffusion") {
        case "synthetic": return (TestPatternRenderer(models: ["synthetic"], delay: syntheticDelay), maxPixels)
        case "test-pattern": return (TestPatternRenderer(), maxPixels)
        default:
            let renderer = try DiffusionRenderer(
                modelsFolder: models.map { URL(fileURLWithPath: $0) }, memoryBudgetBytes: modelCacheMb.map { $0 << 20 },
                addOns: AddOnFolders(loras: loraDir.map { URL(fileURLWithPath: $0) }, embeddings: embeddingsDir.map { URL(fileURLWithPath: $0) }))
            renderer.device = try openComputeDevice(device)
            if let accelerator = renderer.accelerator {
                logger.info("rendering on \(accelerator.description)", metadata: ["device": "\(device)"])
            }
            let estimate = renderer.pixelEstimate()
            logger.info("memory allows \(estimate)", metadata: ["max_pixels": "\(estimate.maxPixels)"])
            if let maxPixels {
                if maxPixels > estimate.maxPixels {
                    logger.warning("--max-pixels \(maxPixels) is above the \(estimate.maxPixels) pixels the memory estimate allows; taken as given")
                }
            } else if estimate.maxPixels < 64 * 64 {
                throw ValidationError(
                    "the memory estimate leaves no room for a render (\(estimate)); remove models, lower --model-cache-mb or give --max-pixels")
            }
            renderer.maxPixels = maxPixels ?? estimate.maxPixels
            return (renderer, renderer.maxPixels)
        }
    }
}
