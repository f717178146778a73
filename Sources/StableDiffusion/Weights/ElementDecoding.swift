/// Reads one element of little-endian stored bytes as Float32: the engine's one decoder of each stored type
/// (half and bfloat16 included), shared by safetensors files and PyTorch checkpoints. Every type converts
/// into the output tensor directly, so a float16 checkpoint is widened once, with no intermediate copy.
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

enum Float16Element: StorageElement {
    /// IEEE half to single by bit manipulation: `Float16` is missing on macOS x86-64.
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        let half = UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
        let sign = (half & 0x8000) << 16
        let exponent = (half >> 10) & 0x1F
        let mantissa = half & 0x3FF
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            // Zero or subnormal: mantissa × 2⁻²⁴, exact in Float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

enum BFloat16Element: StorageElement {
    @inline(__always) static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        let bits = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
        return Float(bitPattern: UInt32(bits) << 16)
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
