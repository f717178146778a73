import CVulkan

/// Why the Vulkan backend cannot run here, worded for the user (what is missing and what to install or choose).
public struct VulkanError: Error, CustomStringConvertible, Equatable {
    /// The explanation.
    public let message: String
    /// Wraps `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What one Vulkan device offers for compute, as `farm devices` lists it.
public struct VulkanDeviceInfo: Sendable, Equatable, Codable {
    /// Its index among this host's devices (`--device vulkan:N`).
    public var index: Int
    /// The driver's name for it ("NVIDIA GeForce RTX 4090", "llvmpipe (LLVM 15.0.6, 256 bits)").
    public var name: String
    /// The driver and its version.
    public var driver: String
    /// "discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other".
    public var kind: String
    /// The largest device-local memory heap, in bytes.
    public var memoryBytes: UInt64
    /// Invocations per subgroup (warp/wavefront).
    public var subgroupSize: Int
    /// Shared memory a workgroup may use, in bytes.
    public var sharedMemoryBytes: Int
    /// Whether shaders may compute in 16-bit floats (shaderFloat16).
    public var float16: Bool
    /// Whether storage buffers may hold 16-bit values directly (storageBuffer16BitAccess).
    public var storage16Bit: Bool
    /// Cooperative-matrix shapes with f16 inputs, each [M, N, K] (empty where the device has none).
    public var cooperativeMatrixShapes: [[Int]]
}

/// The Vulkan loader and this host's devices. The loader is opened at run time, so a host without one still runs
/// the CPU backend and learns why Vulkan is missing from the error.
public enum Vulkan {
    /// Every Vulkan device on this host; throws `VulkanError` when there is no loader or driver.
    public static func devices() throws -> [VulkanDeviceInfo] {
        try load()
        return (0..<cv_device_count()).compactMap { describe(Int($0)) }
    }

    /// Opens the loader once; throws its reason when that failed.
    static func load() throws {
        var error = [CChar](repeating: 0, count: 512)
        guard cv_load(&error, error.count) == 0 else { throw VulkanError(String(cString: error)) }
    }

    /// Device `index`'s properties, or nil when there is no such device.
    static func describe(_ index: Int) -> VulkanDeviceInfo? {
        var raw = cv_device_info()
        guard cv_device_describe(UInt32(index), &raw) == 0 else { return nil }
        let kinds = [1: "integrated GPU", 2: "discrete GPU", 3: "virtual GPU", 4: "CPU"]
        let shapes = withUnsafeBytes(of: raw.cooperative_shapes) { bytes in
            let words = bytes.bindMemory(to: UInt32.self)
            return (0..<Int(raw.cooperative_shape_count)).map { i in (0..<3).map { Int(words[i * 3 + $0]) } }
        }
        return VulkanDeviceInfo(
            index: index, name: string(raw.name), driver: string(raw.driver), kind: kinds[Int(raw.type)] ?? "other",
            memoryBytes: raw.memory_bytes, subgroupSize: Int(raw.subgroup_size), sharedMemoryBytes: Int(raw.max_shared_memory),
            float16: raw.shader_float16 != 0, storage16Bit: raw.storage_16bit != 0, cooperativeMatrixShapes: shapes)
    }

    /// A fixed-size C string field as a Swift string.
    private static func string<T>(_ field: T) -> String {
        withUnsafeBytes(of: field) { bytes in
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }
}
