import ArgumentParser
import Foundation
import Tensors

/// `farm devices`: the compute devices this host offers: the CPU backend and every Vulkan device.
struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List this host's compute devices: the CPU and each Vulkan device (for --device cpu|vulkan[:N]).",
        discussion: """
            Vulkan is loaded at run time (libvulkan.so.1): without a loader or driver the list has the CPU only and
            says why Vulkan is missing. For each Vulkan device: its name and kind, device-local memory, subgroup
            size, whether shaders compute in f16, and its cooperative-matrix shapes (M×N×K, f16 inputs).
            """)

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    /// The report, as --json prints it.
    struct Report: Encodable {
        /// The CPU backend's instruction set, threads and memory.
        struct CPU: Encodable {
            var device = "cpu"
            var instructionSet: String
            var threads: Int
            var memoryBytes: UInt64
        }
        var cpu: CPU
        var vulkan: [VulkanDeviceInfo]
        /// Why there are no Vulkan devices, when there are none.
        var vulkanError: String?
    }

    func run() throws {
        var vulkan: [VulkanDeviceInfo] = []
        var problem: String?
        do {
            vulkan = try Vulkan.devices()
            if vulkan.isEmpty { problem = "the Vulkan loader found no devices: install a driver (mesa-vulkan-drivers, or the GPU vendor's)" }
        } catch {
            problem = "\(error)"
        }
        let cpu = Report.CPU(
            instructionSet: Tensor.instructionSet, threads: ComputeThreads.count, memoryBytes: ProcessInfo.processInfo.physicalMemory)
        if json { return try printJSON(Report(cpu: cpu, vulkan: vulkan, vulkanError: problem)) }
        var rows = [["cpu", "CPU backend (\(cpu.instructionSet), \(cpu.threads) threads)", "CPU", gibibytes(cpu.memoryBytes), "-", "-", "-"]]
        for device in vulkan {
            let shapes = device.cooperativeMatrixShapes.map { $0.map(String.init).joined(separator: "×") }
            rows.append([
                "vulkan:\(device.index)", device.name, device.kind, gibibytes(device.memoryBytes), "\(device.subgroupSize)",
                device.float16 ? "yes" : "no", shapes.isEmpty ? "none" : shapes.joined(separator: " "),
            ])
        }
        printTable(["DEVICE", "NAME", "KIND", "MEMORY", "SUBGROUP", "F16", "COOPERATIVE MATRIX"], rows)
        if let problem { print("no Vulkan devices: \(problem)") }
    }

    private func gibibytes(_ bytes: UInt64) -> String { String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
}

/// Opens `--device`'s choice: nil for the CPU, the Vulkan device otherwise. A bad name, or a device this host lacks,
/// is the user's input error.
func openComputeDevice(_ text: String, flag: String = "--device") throws -> VulkanDevice? {
    guard let choice = ComputeDevice(text) else { throw ValidationError("\(flag) \(text): expected cpu, vulkan or vulkan:N") }
    guard case .vulkan(let index) = choice else { return nil }
    do { return try VulkanDevice(index: index) } catch { throw ValidationError("\(flag) \(text): \(error)") }
}

extension Bench {
    /// How the report names `--device`: "cpu", or "vulkan:N (device name)".
    static func deviceName(_ text: String) throws -> String {
        guard case .vulkan(let index)? = ComputeDevice(text) else { return "cpu" }
        let name = (try? Vulkan.devices())?.first { $0.index == index }?.name ?? "not found"
        return "vulkan:\(index) (\(name))"
    }
}
