import Foundation
import StableDiffusion

/// The largest image (width × height) a diffusion worker's memory allows, and what the figure was made of, for
/// the HELLO and the log. Its weights are bounded by what the renderer can hold at once: the pipeline cache's
/// budget, or the two largest models when they exceed it (a refined render holds its model and its refiner
/// whatever the cache evicts), but never more than every model with every VAE; plus every ControlNet (loaded
/// ones stay). `MemoryEstimate` turns the rest of the memory into pixels at the activation cost of the
/// hungriest UNet class among the models.
public struct PixelEstimate: Equatable, Sendable, CustomStringConvertible {
    /// Memory the estimate started from, in bytes.
    public var memoryBytes: UInt64
    /// The weights the renderer may hold at once, in bytes.
    public var weightsBytes: Int
    /// The UNet class the bytes per pixel are those of (nil: a model's class is unknown, so the largest).
    public var architecture: MemoryEstimate.Architecture?
    /// The resulting limit; 0 when the weights leave no room.
    public var maxPixels: Int

    /// The estimate for a renderer whose cache may hold `cacheBudgetBytes`, serving models, VAEs and ControlNets
    /// of these summaries, on a machine with `memoryBytes`.
    public init(
        memoryBytes: UInt64, cacheBudgetBytes: Int, models: [WeightsSummary], vaeCount: Int, controlNets: [WeightsSummary]
    ) {
        let sizes = models.map(\.loadedBytes).sorted(by: >)
        let largestTwo = sizes.prefix(2).reduce(0, +)
        let everything = sizes.reduce(0, +) * (1 + vaeCount)
        weightsBytes = min(max(cacheBudgetBytes, largestTwo), everything) + controlNets.reduce(0) { $0 + $1.loadedBytes }
        architecture = models.allSatisfy { $0.architecture == .sd } ? .sd : models.contains { $0.architecture == nil } ? nil : .sdxl
        self.memoryBytes = memoryBytes
        maxPixels = MemoryEstimate.maxPixels(memoryBytes: memoryBytes, weightsBytes: weightsBytes, architecture: architecture)
    }

    /// One line for the log: the limit (as the side of a square) and what it came from.
    public var description: String {
        let gib = { (bytes: Double) in String(format: "%.1f GiB", bytes / Double(1 << 30)) }
        let reserve = MemoryEstimate.reserveBytes(memoryBytes: memoryBytes)
        return "\(maxPixels) pixels (\(Int(Double(maxPixels).squareRoot()))²): \(gib(Double(memoryBytes))) of memory"
            + " − \(gib(Double(reserve))) reserve − \(gib(Double(weightsBytes))) of weights, at"
            + " \(MemoryEstimate.bytesPerPixel(architecture)) bytes per pixel (\(architecture?.rawValue ?? "unknown UNet, as SDXL"))"
    }

    /// The memory a render is bounded by: the host's, or on a GPU (`device`, its memory) the smaller of the two, as the
    /// activations and the weights' device copies live in the device's memory while the host still holds the weights.
    public static func renderingMemoryBytes(host: UInt64, device: UInt64?) -> UInt64 {
        min(host, device ?? host)
    }

    /// The memory this process may use: the machine's, or less where a cgroup (a container, a systemd unit's
    /// `MemoryMax=`) limits it.
    public static func availableMemoryBytes() -> UInt64 {
        var memory = ProcessInfo.processInfo.physicalMemory
        // cgroup v2, then v1; "max" or a v1 "unlimited" figure larger than the machine change nothing.
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                let limit = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0
            {
                memory = min(memory, limit)
            }
        }
        return memory
    }
}

extension DiffusionRenderer {
    /// How large an image `memoryBytes` allows with this renderer's models (default: what this process may use, or
    /// on a GPU `PixelEstimate.renderingMemoryBytes` of it and the device's).
    public func pixelEstimate(memoryBytes: UInt64? = nil) -> PixelEstimate {
        let memory =
            memoryBytes ?? PixelEstimate.renderingMemoryBytes(host: PixelEstimate.availableMemoryBytes(), device: accelerator?.memoryBytes)
        return PixelEstimate(
            memoryBytes: memory, cacheBudgetBytes: budgetBytes, models: index.models.values.map(\.summary),
            vaeCount: index.vaes.count, controlNets: index.controlNets.values.map(\.summary))
    }
}
