import CKernels

/// How a tensor's elements are stored. Every operation computes in Float32; weights keep the half-precision format
/// their files store (`float16`, `bfloat16`), half the memory, and are widened where a product reads them
/// (`Tensor.withFloat32Elements`), one layer at a time. Widening is exact, so results do not depend on the storage.
public enum ElementType: Sendable, Equatable, CustomStringConvertible {
    /// IEEE single precision: every activation, and weights from float32 files.
    case float32
    /// IEEE half precision (safetensors `F16`, PyTorch `torch.half`).
    case float16
    /// bfloat16 (safetensors `BF16`): Float32's top 16 bits.
    case bfloat16

    /// Bytes per element.
    public var byteCount: Int { self == .float32 ? 4 : 2 }

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .float16: return "float16"
        case .bfloat16: return "bfloat16"
        }
    }
}

/// Tensors of half-precision elements: making them, widening and narrowing.
extension Tensor {
    /// A tensor of `element` values copied from little-endian bytes as a file stores them (`shape`'s element count times
    /// the element's size; any alignment).
    public init(shape: [Int], element: ElementType, bytes: UnsafeRawBufferPointer) {
        self.init(uninitialized: shape, element: element)
        precondition(bytes.count == count * element.byteCount, "\(bytes.count) bytes do not hold \(shape) of \(element)")
        if let source = bytes.baseAddress { storage.bytes.copyMemory(from: source, byteCount: bytes.count) }
    }

    /// A tensor of `element` whose elements are unspecified, for loaders that write every byte
    /// (`withUnsafeMutableRawBytes`).
    public init(uninitialized shape: [Int], element: ElementType) {
        guard element != .float32 else {
            self.init(uninitialized: shape)
            return
        }
        precondition(shape.allSatisfy { $0 >= 0 }, "tensor shape must not be negative: \(shape)")
        self.init(storage: TensorStorage(count: shape.reduce(1, *), element: element), shape: shape)
    }

    /// Whether the elements are stored as halves (`float16` or `bfloat16`).
    public var isHalf: Bool { element != .float32 }

    /// The elements as Float32 (exact): this tensor itself when it is Float32 already. Loaders widen the small weights
    /// that other operations read (norms, biases, position embeddings); large weights stay halves.
    public func widened() -> Tensor {
        guard isHalf else { return self }
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        withExtendedLifetime(self) { Tensor.widenAll(storage, into: output) }
        return result
    }

    /// A tensor of `element` holding `values` (row-major) rounded to it: to nearest, ties to even, as PyTorch's
    /// `.half()` and `.bfloat16()` round.
    public init(shape: [Int], element: ElementType, narrowing values: UnsafeBufferPointer<Float>) {
        self.init(uninitialized: shape, element: element)
        precondition(values.count == count, "\(values.count) values do not fill shape \(shape)")
        guard let input = values.baseAddress else { return }
        let output = mutableRawPointer()
        parallelFor(count, minimumChunk: 1 << 16) { range in
            switch element {
            case .float32: (output.assumingMemoryBound(to: Float.self) + range.lowerBound).update(from: input + range.lowerBound, count: range.count)
            case .float16: ck_narrow_f16(input + range.lowerBound, output + range.lowerBound * 2, range.count)
            case .bfloat16: ck_narrow_bf16(input + range.lowerBound, output + range.lowerBound * 2, range.count)
            }
        }
    }

    /// The elements rounded to `element` (to nearest, ties to even), as a file in that format would hold them.
    public func narrowed(to element: ElementType) -> Tensor {
        guard element != self.element else { return self }
        let source = widened()
        return source.withUnsafeBufferPointer { Tensor(shape: shape, element: element, narrowing: $0) }
    }

    /// Calls `body` with the stored bytes (little-endian, `count × element.byteCount`).
    public func withUnsafeRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeRawBufferPointer(start: storage.bytes, count: count * element.byteCount))
        }
    }

    /// Writable pointer to the first stored byte, valid while this tensor is alive and unshared; copies shared storage
    /// first (loaders that fill many tensors from several threads).
    public mutating func mutableRawPointer() -> UnsafeMutableRawPointer {
        withUnsafeMutableRawBytes { $0.baseAddress! }
    }

    /// Calls `body` with write access to the stored bytes, first copying the storage if it is shared.
    public mutating func withUnsafeMutableRawBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        let byteCount = count * element.byteCount
        if !isKnownUniquelyReferenced(&storage) {
            let copy = isHalf ? TensorStorage(count: count, element: element) : TensorStorage(count: count, zeroed: false)
            copy.bytes.copyMemory(from: storage.bytes, byteCount: byteCount)
            storage = copy
        }
        return try body(UnsafeMutableRawBufferPointer(start: storage.bytes, count: byteCount))
    }

    /// Widens elements `range` of half storage into `output` (on the calling thread).
    static func widen(_ storage: TensorStorage, range: Range<Int>, into output: UnsafeMutablePointer<Float>) {
        let source = storage.bytes + range.lowerBound * 2
        switch storage.element {
        case .float32: output.update(from: storage.pointer + range.lowerBound, count: range.count)
        case .float16: ck_widen_f16(source, output, range.count)
        case .bfloat16: ck_widen_bf16(source, output, range.count)
        }
    }

    /// Widens all of `storage` into `output`, split across the compute threads.
    static func widenAll(_ storage: TensorStorage, into output: UnsafeMutablePointer<Float>) {
        parallelFor(storage.count, minimumChunk: 1 << 16) { range in widen(storage, range: range, into: output + range.lowerBound) }
    }

    /// One element of half storage, widened.
    static func widen(_ storage: TensorStorage, at index: Int) -> Float {
        var value: Float = 0
        widen(storage, range: index..<(index + 1), into: &value)
        return value
    }
}
