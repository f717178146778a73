/// Where a network runs: `cpu` (OpenBLAS + the C kernels) or a Vulkan device by index, as `--device` names it.
public enum ComputeDevice: Equatable, Sendable, CustomStringConvertible {
    /// The CPU backend.
    case cpu
    /// Vulkan device N (`Vulkan.devices()`'s order).
    case vulkan(Int)

    /// Parses `cpu`, `vulkan` (device 0) or `vulkan:N`; nil for anything else.
    public init?(_ text: String) {
        let lowered = text.lowercased()
        if lowered == "cpu" {
            self = .cpu
        } else if lowered == "vulkan" {
            self = .vulkan(0)
        } else if lowered.hasPrefix("vulkan:"), let index = Int(lowered.dropFirst(7)), index >= 0 {
            self = .vulkan(index)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .vulkan(let index): return "vulkan:\(index)"
        }
    }
}
