/// A tensor whose elements live in a Vulkan device's memory: Float32 activations, or float16 weights (uploaded once,
/// read by `linear` and `conv2d`, which accumulate in Float32). Operations record dispatches; `download` runs them.
/// Immutable: every operation writes a new buffer, so recorded commands never see a buffer change under them.
public struct DeviceTensor {
    /// Extent of each dimension (row-major; NCHW for images).
    public private(set) var shape: [Int]
    /// `.float32`, or `.float16` for weights.
    public let element: ElementType
    let buffer: DeviceBuffer

    /// The device holding the elements.
    public var device: VulkanDevice { buffer.device }
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Number of dimensions.
    public var rank: Int { shape.count }

    init(shape: [Int], element: ElementType = .float32, buffer: DeviceBuffer) {
        self.shape = shape
        self.element = element
        self.buffer = buffer
    }

    /// The same elements under another shape (one dimension may be -1); no copy.
    public func reshaped(_ newShape: [Int]) -> DeviceTensor {
        var view = self
        view.shape = ShapeCheck.reshape(shape, count: count, to: newShape)
        return view
    }
}

/// Moving tensors between the host and a device.
extension VulkanDevice {
    /// A Float32 copy of `tensor` on this device (halves are widened): activations, norms' and biases' parameters.
    public func upload(_ tensor: Tensor) -> DeviceTensor {
        let source = tensor.widened()
        let buffer = DeviceBuffer(device: self, bytes: source.count * 4)
        source.withUnsafeBufferPointer { elements in
            if let base = elements.baseAddress { buffer.memory.copyMemory(from: base, byteCount: elements.count * 4) }
        }
        return DeviceTensor(shape: tensor.shape, buffer: buffer)
    }

    /// `tensor` stored as float16 on this device, rounded to nearest (exact for float16 files; bfloat16 and Float32
    /// weights are rounded): the weights of dense layers and convolutions, half the memory of Float32.
    public func uploadWeight(_ tensor: Tensor) -> DeviceTensor {
        let halves = tensor.element == .float16 ? tensor : tensor.widened().narrowed(to: .float16)
        // Two halves per 32-bit word in the shaders: round the size up to whole words.
        let buffer = DeviceBuffer(device: self, bytes: (halves.count + 1) / 2 * 4)
        halves.withUnsafeRawBytes { bytes in
            if let base = bytes.baseAddress { buffer.memory.copyMemory(from: base, byteCount: bytes.count) }
        }
        return DeviceTensor(shape: tensor.shape, element: .float16, buffer: buffer)
    }

    /// A Float32 tensor of unspecified elements for a kernel to write.
    func uninitialized(_ shape: [Int]) -> DeviceTensor {
        DeviceTensor(shape: shape, buffer: DeviceBuffer(device: self, bytes: shape.reduce(1, *) * 4))
    }

    /// The elements of `tensor` on the host, after running every dispatch recorded so far.
    public func download(_ tensor: DeviceTensor) -> Tensor {
        synchronize()
        var result = Tensor(uninitialized: tensor.shape)
        if tensor.element == .float32 {
            let output = result.mutablePointer()
            output.update(from: tensor.buffer.memory.assumingMemoryBound(to: Float.self), count: tensor.count)
            return result
        }
        let bytes = UnsafeRawBufferPointer(start: tensor.buffer.memory, count: tensor.count * 2)
        return Tensor(shape: tensor.shape, element: .float16, bytes: bytes).widened()
    }
}

extension DeviceTensor {
    /// The elements on the host (runs every recorded dispatch first).
    public func toHost() -> Tensor { device.download(self) }
}
