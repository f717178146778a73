/// Reads one element of little-endian stored bytes as Float32: the engine's one decoder of each stored type that it
/// converts (float32, float64, integers, bool), shared by safetensors files and PyTorch checkpoints. Every type converts
/// into the output tensor directly, with no intermediate copy. Half and bfloat16 are not converted: they stay resident
/// as stored (`Tensor.element`), and `Tensors` widens them where products read them.
protocol StorageElement {
    static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float
    static func convert(_ base: UnsafeRawPointer, from start: Int, count: Int, into output: UnsafeMutablePointer<Float>)
}

extension StorageElement {
    @inline(__always)
    static func convert(
        _ base: UnsafeRawPointer, from start: Int, count: Int,
        into output: UnsafeMutablePointer<Float>
    ) {
        for index in 0..<count { output[index] = load(base, start + index) }
    }
}

enum Float32Element: StorageElement {
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        Float(bitPattern: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
    }

    /// A plain copy: every host Swift runs this engine on is little-endian, like the file.
    static func convert(
        _ base: UnsafeRawPointer, from start: Int, count: Int,
        into output: UnsafeMutablePointer<Float>
    ) {
        UnsafeMutableRawPointer(output).copyMemory(from: base + start * 4, byteCount: count * 4)
    }
}

enum Float64Element: StorageElement {
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        Float(Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))))
    }
}

enum IntegerElement<Value: FixedWidthInteger>: StorageElement {
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        Float(Value(littleEndian: base.loadUnaligned(fromByteOffset: index * MemoryLayout<Value>.size, as: Value.self)))
    }
}

enum BoolElement: StorageElement {
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        base.load(fromByteOffset: index, as: UInt8.self) == 0 ? 0 : 1
    }
}
