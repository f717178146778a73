// Module Tensors: tensors and every operation the models need (products through OpenBLAS, convolutions, norms,
// attention, resampling), buffer pools and threads. Imports only CBLAS and CKernels; knows nothing of models.

/// Owns one aligned buffer: Float32 from `BufferPool`, or half-precision weights as their files store them; shared by
/// tensors until one of them writes.
public final class TensorStorage {
    /// The first byte.
    public let bytes: UnsafeMutableRawPointer
    /// Number of elements.
    public let count: Int
    /// How the elements are stored.
    public let element: ElementType
    /// The Vulkan buffer whose mapped memory `bytes` points into, for a tensor on a device (nil on the host).
    let deviceBuffer: DeviceBuffer?

    /// Takes a Float32 buffer of `count` elements from the pool; zeroed unless `zeroed` is false
    /// (for kernels that overwrite every element).
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "tensor element count must not be negative")
        let pointer = BufferPool.take(count: count)
        bytes = UnsafeMutableRawPointer(pointer)
        self.count = count
        element = .float32
        deviceBuffer = nil
        if zeroed { pointer.update(repeating: 0, count: count) }
    }

    /// Float32 storage in a device buffer of at least `count` elements (`Tensor+Device.swift`).
    init(deviceBuffer: DeviceBuffer, count: Int) {
        precondition(deviceBuffer.bytes >= count * 4, "a device buffer of \(deviceBuffer.bytes) bytes cannot hold \(count) floats")
        bytes = deviceBuffer.memory
        self.count = count
        element = .float32
        self.deviceBuffer = deviceBuffer
    }

    /// Allocates `count` uninitialised elements of a half-precision type. Not pooled: weights live as long as their model.
    public init(count: Int, element: ElementType) {
        precondition(count >= 0, "tensor element count must not be negative")
        precondition(element != .float32, "Float32 storage comes from the buffer pool: use init(count:zeroed:)")
        bytes = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * element.byteCount, alignment: 64)
        self.count = count
        self.element = element
        deviceBuffer = nil
    }

    /// The first element of Float32 storage. Half-precision storage has no Float32 elements to point at: the
    /// precondition stops an operation that would misread it (widen with `Tensor.widened()`). On a device, the
    /// dispatches recorded so far run first, so that the host reads (or writes) settled elements.
    public var pointer: UnsafeMutablePointer<Float> {
        if let deviceBuffer { deviceBuffer.device.synchronize() }
        precondition(
            element == .float32,
            "a \(element) tensor was read as Float32: widen it first (Tensor.widened()); only dense layers, convolutions "
                + "and embedding lookups read half-precision weights")
        return bytes.assumingMemoryBound(to: Float.self)
    }

    deinit {
        // Device memory goes with its buffer (when no recorded dispatch uses it any more).
        if deviceBuffer != nil { return }
        if element == .float32 { BufferPool.give(bytes.assumingMemoryBound(to: Float.self), count: count) } else { bytes.deallocate() }
    }
}

/// A dense, contiguous tensor (row-major; NCHW for images) with copy-on-write storage, so that reshapes and copies are
/// cheap. Every operation computes in Float32; weights may be stored as halves (`element`), which the dense layers,
/// convolutions and embedding lookups read directly and every other operation refuses (see `Tensor+Halves.swift`).
public struct Tensor {
    /// Extent of each dimension.
    public private(set) var shape: [Int]
    /// The elements; shared until a write makes this tensor's copy unique.
    @usableFromInline var storage: TensorStorage

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "tensor shape must not be negative: \(shape)")
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
    }

    /// A tensor whose elements are unspecified, for kernels that write every element.
    public init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "tensor shape must not be negative: \(shape)")
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *), zeroed: false)
    }

    /// A tensor over `storage` (which holds exactly `shape`'s elements).
    init(storage: TensorStorage, shape: [Int]) {
        precondition(storage.count == shape.reduce(1, *), "storage of \(storage.count) elements does not fill \(shape)")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor holding `values` in row-major order.
    public init(shape: [Int], values: [Float]) {
        precondition(
            shape.reduce(1, *) == values.count,
            "\(values.count) values do not fill shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A tensor with every element set to `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(uninitialized: shape)
        storage.pointer.update(repeating: value, count: count)
    }

    /// Number of elements.
    public var count: Int { storage.count }

    /// Read-only pointer to the first element, valid while this tensor is alive.
    @inlinable
    public var pointer: UnsafePointer<Float> { UnsafePointer(storage.pointer) }

    /// Writable pointer to the first element; copies shared storage first.
    @inlinable
    public mutating func mutablePointer() -> UnsafeMutablePointer<Float> {
        withUnsafeMutableBufferPointer { $0.baseAddress! }
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// How the elements are stored (Float32 unless a loader kept a file's halves).
    public var element: ElementType { storage.element }

    /// The elements in row-major order (halves widened).
    public var scalars: [Float] {
        guard element == .float32 else { return widened().scalars }
        return Array(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// The same elements under another shape; shares storage (no copy).
    /// One dimension may be -1 and is then inferred.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var view = self
        view.shape = ShapeCheck.reshape(shape, count: count, to: newShape)
        return view
    }

    /// Calls `body` with read access to the elements.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Calls `body` with write access, first copying the storage if it is shared.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: storage.count, zeroed: false)
            copy.pointer.update(from: storage.pointer, count: storage.count)
            storage = copy
        }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Reads or writes one element by its multi-dimensional index (a half is widened when read).
    public subscript(_ index: Int...) -> Float {
        get { element == .float32 ? storage.pointer[offset(of: index)] : Tensor.widen(storage, at: offset(of: index)) }
        set {
            let position = offset(of: index)
            withUnsafeMutableBufferPointer { $0[position] = newValue }
        }
    }

    private func offset(of index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not match rank of \(shape)")
        var position = 0
        for (axis, value) in index.enumerated() {
            precondition(value >= 0 && value < shape[axis], "index \(index) out of bounds for \(shape)")
            position = position * shape[axis] + value
        }
        return position
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        let stored = element == .float32 ? "" : " \(element)"
        return "Tensor(\(shape)\(stored): [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
