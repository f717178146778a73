import Foundation

/// Tensors on a Vulkan device. A tensor whose storage is a device buffer (`moved(to:)`) runs the operations the
/// models use on that device, and their results stay there; the models call the same operations either way.
/// Weights stay host tensors: the device keeps a float16 copy of each, made on first use (`VulkanDevice.weight`).
/// An operation without a device kernel reads the mapped memory on the host (after the recorded dispatches ran) and
/// moves its result back, so every operation works on a device tensor, the missing ones just slower.
extension Tensor {
    /// The Vulkan device holding the elements, or nil for a tensor in host memory.
    public var device: VulkanDevice? { storage.deviceBuffer?.device }

    /// This tensor in `device`'s memory (Float32; halves widened), or in host memory when `device` is nil; itself
    /// when it is there already. Networks call it on their inputs and outputs: only those cross.
    public func moved(to device: VulkanDevice?) -> Tensor {
        if self.device === device { return self }
        guard let device else {
            var host = Tensor(uninitialized: shape)
            host.mutablePointer().update(from: storage.pointer, count: count)
            return host
        }
        return Tensor(device: device.upload(self))
    }

    /// A tensor over a device tensor's buffer (Float32).
    init(device tensor: DeviceTensor) {
        precondition(tensor.element == .float32, "only Float32 device tensors become Tensors")
        self.init(storage: TensorStorage(deviceBuffer: tensor.buffer, count: tensor.count), shape: tensor.shape)
    }

    /// This tensor as the kernels see it, on `device` (uploaded for the call when it is a host tensor).
    func onDevice(_ device: VulkanDevice) -> DeviceTensor {
        if let buffer = storage.deviceBuffer, buffer.device === device { return DeviceTensor(shape: shape, buffer: buffer) }
        return device.upload(self)
    }

    /// The device of the first operand that has one: where an operation with several operands runs.
    static func device(of tensors: Tensor?...) -> VulkanDevice? {
        for tensor in tensors { if let device = tensor?.device { return device } }
        return nil
    }

    /// Runs a host operation on a device tensor's elements and moves the result back to the device: the path of the
    /// operations that have no kernel (slices, padding), so that a network's activations stay on its device.
    func onHostThenBack(_ device: VulkanDevice, _ body: (Tensor) -> Tensor) -> Tensor {
        body(moved(to: nil)).moved(to: device)
    }
}

/// The device's copies of host weights, made once each and kept while the host tensor lives.
final class WeightCache {
    private struct Entry {
        weak var storage: TensorStorage?
        let copy: DeviceTensor
    }
    private var entries: [ObjectIdentifier: Entry] = [:]
    private var insertionsSincePurge = 0
    private let lock = NSLock()

    /// The copy of `tensor` (`half`: float16, else Float32), made by `make` on first use.
    func copy(of tensor: Tensor, half: Bool, make: () -> DeviceTensor) -> DeviceTensor {
        let storage = tensor.storage
        let key = ObjectIdentifier(storage)
        return lock.withLock {
            if let entry = entries[key], entry.storage === storage, (entry.copy.element == .float16) == half {
                return entry.copy.reshaped(tensor.shape)
            }
            // Copies of weights whose models are gone are dropped now and then (their storage's address may return).
            insertionsSincePurge += 1
            if insertionsSincePurge > 256 {
                entries = entries.filter { $0.value.storage != nil }
                insertionsSincePurge = 0
            }
            let copy = make()
            entries[key] = Entry(storage: storage, copy: copy)
            return copy.reshaped(tensor.shape)
        }
    }

    /// Drops every copy (their device memory goes when no recorded dispatch uses it).
    func removeAll() { lock.withLock { entries.removeAll() } }
}

extension VulkanDevice {
    /// The float16 copy of host weight `tensor` on this device (dense layers, convolutions), made on first use.
    func weight(_ tensor: Tensor) -> DeviceTensor {
        if let buffer = tensor.storage.deviceBuffer, buffer.device === self {
            // A weight that is a device tensor already (computed on the device): round it to float16 here.
            return uploadWeight(tensor)
        }
        return weights.copy(of: tensor, half: true) { uploadWeight(tensor) }
    }

    /// The Float32 copy of host parameter `tensor` on this device (biases, norms' scales and shifts).
    func parameter(_ tensor: Tensor) -> DeviceTensor {
        if let buffer = tensor.storage.deviceBuffer, buffer.device === self { return DeviceTensor(shape: tensor.shape, buffer: buffer) }
        return weights.copy(of: tensor, half: false) { upload(tensor) }
    }

    /// Frees the device copies of every model's weights (a worker switching models calls it).
    public func releaseWeights() { weights.removeAll() }
}

extension Tensor {
    /// a op b on the device of either (op as the elementwise shader numbers it), when one is on a device and b
    /// broadcasts over a (or, for an operation that `commutes`, a over b) as the kernel can; nil otherwise.
    static func deviceBinary(_ a: Tensor, _ b: Tensor, op: UInt32, commutes: Bool) -> Tensor? {
        guard let device = device(of: a, b) else { return nil }
        let shape = broadcastShape(a.shape, b.shape)
        let (first, second) = a.shape == shape ? (a, b) : (b, a)
        guard first.shape == shape, first.shape == a.shape || commutes, DeviceTensor.broadcasts(second.shape, over: shape) else {
            return onHost(a, b, op: op).moved(to: device)
        }
        let x = first.onDevice(device)
        let y = second.onDevice(device)
        switch op {
        case 3: return Tensor(device: x + y)
        case 4: return Tensor(device: x * y)
        default: return Tensor(device: x - y)
        }
    }

    /// a op b on the host (the shapes the device kernel does not broadcast).
    private static func onHost(_ a: Tensor, _ b: Tensor, op: UInt32) -> Tensor {
        let (x, y) = (a.moved(to: nil), b.moved(to: nil))
        switch op {
        case 3: return broadcast(x, y, +)
        case 4: return broadcast(x, y, *)
        default: return broadcast(x, y, -)
        }
    }
}
