import Foundation

/// How a worker introduces itself: its name, models, slots and machine.
extension WireMessage {
    /// A worker's introduction.
    public struct Hello: Codable, Equatable, Sendable {
        /// The worker's stable name.
        public var workerID: String
        /// Host name of the machine.
        public var host: String
        /// Protocol version the worker speaks.
        public var version: Int
        /// Models the worker can load.
        public var models: [String]
        /// Tasks it can run at once.
        public var slots: Int
        /// Largest width × height it renders (absent: the farm's limit): what its memory allows.
        public var maxPixels: Int?
        /// VAEs it can swap in, by name. Present (even empty) when it renders tasks that name a refiner or a VAE;
        /// absent from older workers, which would ignore those fields, so they are given no such task.
        public var vaes: [String]?
        /// LoRAs it has, by name (file stems in its `--lora-dir`); absent from a worker without that folder (or older
        /// than the field), which is given no task naming LoRAs in its `loras` field.
        public var loras: [String]?
        /// Its tags (`farm worker --tag`): a task that requires tags goes only to workers that have them all.
        public var tags: [String]?
        /// SHA-256s of the store models in its model cache: the coordinator prefers it for tasks of those models.
        public var modelHashes: [String]?
        /// True when it fetches store models it lacks from the coordinator (`--model-server`): it may be given any
        /// task naming a stored model.
        public var fetchesModels: Bool?
        /// Tasks it already holds (after a reconnect): queued, rendering, or awaiting acknowledgement.
        public var activeTasks: [Int64]?
        /// The machine it runs on.
        public var device: Device?

        /// Makes a hello.
        public init(
            workerID: String, host: String, version: Int = WireMessage.protocolVersion,
            models: [String], slots: Int, maxPixels: Int? = nil, activeTasks: [Int64]? = nil, device: Device? = nil,
            vaes: [String]? = nil, loras: [String]? = nil, tags: [String]? = nil
        ) {
            self.tags = tags
            self.device = device
            self.workerID = workerID
            self.host = host
            self.version = version
            self.models = models
            self.slots = slots
            self.maxPixels = maxPixels
            self.vaes = vaes
            self.loras = loras
            self.activeTasks = activeTasks
        }
    }

    /// What the machine a worker runs on offers.
    public struct Device: Codable, Equatable, Sendable {
        /// CPU model name (or the GPU's, on an accelerator host).
        public var model: String
        /// Cores the engine may use.
        public var cores: Int
        /// Memory in bytes (RAM, or VRAM on an accelerator).
        public var memoryBytes: UInt64
        /// The OpenBLAS kernel set the worker's engine multiplies with (`Cooperlake`, `Haswell`, …): a generic
        /// one (`Prescott`) on a modern CPU means a fraction of its speed.
        public var blasCore: String?
        /// The GPU the engine renders on (`farm worker --device vulkan:N`: `vulkan:0 NVIDIA GeForce RTX 4090`); absent
        /// when it renders on the CPU (and from workers older than the field).
        public var accelerator: String?
        /// The GPU's device-local memory in bytes, with `accelerator`.
        public var acceleratorMemoryBytes: UInt64?

        /// Makes a description.
        public init(
            model: String, cores: Int, memoryBytes: UInt64, blasCore: String? = nil, accelerator: String? = nil,
            acceleratorMemoryBytes: UInt64? = nil
        ) {
            self.model = model
            self.cores = cores
            self.memoryBytes = memoryBytes
            self.blasCore = blasCore
            self.accelerator = accelerator
            self.acceleratorMemoryBytes = acceleratorMemoryBytes
        }

        /// One line for logs and `farm workers`: `AMD EPYC, 2 cores, 23 GiB, BLAS Cooperlake` (names cut to 80 characters),
        /// then `, GPU vulkan:0 NAME, 24 GiB` on a worker that renders on a GPU.
        public var summary: String {
            let gpu = accelerator.map { ", GPU \($0.prefix(80)), \((acceleratorMemoryBytes ?? 0) >> 30) GiB" } ?? ""
            return "\(model.prefix(80)), \(cores) cores, \(memoryBytes >> 30) GiB" + (blasCore.map { ", BLAS \($0.prefix(80))" } ?? "") + gpu
        }

        /// This machine: the CPU model from /proc/cpuinfo, active cores, physical memory.
        public static var current: Device {
            let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let model =
                cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
                .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
            return Device(
                model: model, cores: ProcessInfo.processInfo.activeProcessorCount,
                memoryBytes: ProcessInfo.processInfo.physicalMemory)
        }
    }
}
