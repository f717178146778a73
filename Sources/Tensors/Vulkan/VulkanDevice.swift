import CVulkan
import Foundation

/// One opened Vulkan device: a compute queue, one command buffer that records many dispatches until a result is
/// read (`synchronize`), and a pipeline per shader made on first use. Thread-safe: a lock orders recording.
public final class VulkanDevice: @unchecked Sendable {
    /// The device's properties.
    public let info: VulkanDeviceInfo
    let context: OpaquePointer
    private let lock = NSLock()
    private var pipelines: [String: OpaquePointer] = [:]
    /// Buffers that recorded dispatches use, kept alive until the commands have run.
    private var pending: [DeviceBuffer] = []
    /// The float16/Float32 copies of host weights (`Tensor+Device.swift`).
    let weights = WeightCache()

    /// Opens device `index` (0 is the first `Vulkan.devices()` lists).
    public init(index: Int = 0) throws {
        try Vulkan.load()
        guard index >= 0, let info = Vulkan.describe(index) else {
            let count = cv_device_count()
            throw VulkanError("no Vulkan device \(index): this host has \(count) (farm devices lists them)")
        }
        var error = [CChar](repeating: 0, count: 512)
        guard let context = cv_open(UInt32(index), &error, error.count) else {
            throw VulkanError("cannot open Vulkan device \(index) (\(info.name)): \(String(cString: error))")
        }
        self.info = info
        self.context = context
    }

    deinit {
        weights.removeAll()
        cv_submit(context)
        pending.removeAll()
        for pipeline in pipelines.values { cv_pipeline_destroy(context, pipeline) }
        cv_close(context)
    }

    /// Runs every recorded dispatch and waits for them; results written so far can then be read.
    public func synchronize() {
        lock.withLock { submitLocked() }
    }

    private func submitLocked() {
        let status = cv_submit(context)
        precondition(status == 0, "Vulkan submit failed (VkResult \(status)): the device was lost or ran out of memory")
        pending.removeAll(keepingCapacity: true)
    }

    /// Records shader `name` over `buffers` (its bindings in order) with `push` constants and `groups` workgroups.
    func dispatch(_ name: String, buffers: [DeviceBuffer], push: [UInt32], groups: (x: Int, y: Int, z: Int)) {
        guard groups.x > 0, groups.y > 0, groups.z > 0 else { return }
        lock.withLock {
            let pipeline = pipelineLocked(name, bindings: buffers.count, pushBytes: push.count * 4)
            var handles: [OpaquePointer?] = buffers.map { $0.handle }
            let recorded = push.withUnsafeBytes { constants in
                cv_dispatch(
                    context, pipeline, &handles, UInt32(handles.count), constants.baseAddress, UInt32(constants.count),
                    UInt32(groups.x), UInt32(groups.y), UInt32(groups.z))
            }
            if recorded != 0 {
                // The descriptor pool is full: run what is recorded, then record this dispatch in a fresh buffer.
                submitLocked()
                let again = push.withUnsafeBytes { constants in
                    cv_dispatch(
                        context, pipeline, &handles, UInt32(handles.count), constants.baseAddress, UInt32(constants.count),
                        UInt32(groups.x), UInt32(groups.y), UInt32(groups.z))
                }
                precondition(again == 0, "Vulkan could not record \(name) even in an empty command buffer")
            }
            pending.append(contentsOf: buffers)
        }
    }

    /// The pipeline of shader `name`, made on first use.
    private func pipelineLocked(_ name: String, bindings: Int, pushBytes: Int) -> OpaquePointer {
        if let pipeline = pipelines[name] { return pipeline }
        guard let code = VulkanShaders.spirv(name) else { preconditionFailure("no compute shader named \(name)") }
        var error = [CChar](repeating: 0, count: 512)
        let made = code.withUnsafeBytes { bytes in
            cv_pipeline_create(
                context, bytes.bindMemory(to: UInt32.self).baseAddress, bytes.count, UInt32(bindings), UInt32(pushBytes),
                &error, error.count)
        }
        guard let pipeline = made else {
            preconditionFailure("Vulkan rejected shader \(name) on \(info.name): \(String(cString: error))")
        }
        pipelines[name] = pipeline
        return pipeline
    }
}

/// A storage buffer in a device's memory, mapped for the host; freed when the last tensor using it goes.
final class DeviceBuffer {
    let device: VulkanDevice
    let handle: OpaquePointer
    /// Its size in bytes.
    let bytes: Int

    /// Allocates `bytes` bytes; stops with a message when the device is out of memory.
    init(device: VulkanDevice, bytes: Int) {
        guard let handle = cv_buffer_create(device.context, UInt64(max(bytes, 4))) else {
            preconditionFailure("the Vulkan device \(device.info.name) is out of memory (\(bytes) bytes asked for)")
        }
        self.device = device
        self.handle = handle
        self.bytes = bytes
    }

    /// The host's view of the memory (coherent: no flush needed; read only after `synchronize`).
    var memory: UnsafeMutableRawPointer { cv_buffer_memory(handle) }

    deinit { cv_buffer_destroy(device.context, handle) }
}
