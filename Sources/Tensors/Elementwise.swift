import CKernels

/// Activations, arithmetic with broadcasting, and other element-by-element kernels.
extension Tensor {
    /// Applies `f` to every element into a new tensor, split across the compute threads.
    @inlinable
    public func map(_ f: (Float) -> Float) -> Tensor {
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(count, minimumChunk: 16_384) { range in
                for index in range { output[index] = f(input[index]) }
            }
        }
        return result
    }

    /// SiLU (swish): x · σ(x), with the vector kernel (the scalar closure does not vectorise).
    public func silu() -> Tensor {
        if let device { return Tensor(device: onDevice(device).silu()) }
        return vectorKernel { ck_silu($0, $1, $2) }
    }

    /// GELU with the exact erf form, as PyTorch's default (the vector kernel GEGLU uses).
    public func gelu() -> Tensor {
        if let device { return Tensor(device: onDevice(device).gelu()) }
        return vectorKernel { ck_geglu(nil, $0, $1, $2) }
    }

    /// Runs a C kernel (input, output, count) over every element into a new tensor, in chunks
    /// split across the compute threads.
    private func vectorKernel(_ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(count, minimumChunk: 16_384) { range in
                kernel(input + range.lowerBound, output + range.lowerBound, range.count)
            }
        }
        return result
    }

    /// GELU with the tanh approximation (`approximate="tanh"`).
    public func geluTanh() -> Tensor {
        map { x in 0.5 * x * (1 + fastTanh(0.797_884_56 * (x + 0.044_715 * x * x * x))) }
    }

    /// Quick-GELU of OpenAI's CLIP: x · σ(1.702 x), with the SiLU vector kernel on the CPU (as a scalar closure it took
    /// 11 % of a text encoder's time).
    public func quickGelu() -> Tensor {
        if let device { return Tensor(device: onDevice(device).quickGelu()) }
        return vectorKernel { ck_quick_gelu($0, $1, $2) }
    }

    /// GEGLU, the UNet's feed-forward gate: splits the last dimension in halves (a, g) and returns a · gelu(g).
    public func geglu() -> Tensor {
        if let device { return Tensor(device: onDevice(device).geglu()) }
        let width = shape[rank - 1]
        ShapeCheck.geglu(shape)
        let half = width / 2
        var outShape = shape
        outShape[rank - 1] = half
        var result = Tensor(uninitialized: outShape)
        let output = result.mutablePointer()
        let rows = count / max(width, 1)
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(rows, minimumChunk: max(1, 16_384 / max(half, 1))) { range in
                for row in range {
                    let a = input + row * width
                    ck_geglu(a, a + half, output + row * half, half)
                }
            }
        }
        return result
    }

    /// Multiplies every element by `factor`.
    public func scaled(by factor: Float) -> Tensor {
        if let device { return Tensor(device: onDevice(device).scaled(by: factor)) }
        return map { $0 * factor }
    }

    /// The shape two tensors broadcast to (NumPy rules: align from the right; 1 stretches).
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let rank = max(a.count, b.count)
        let left = Array(repeating: 1, count: rank - a.count) + a
        let right = Array(repeating: 1, count: rank - b.count) + b
        return zip(left, right).map { x, y in
            precondition(x == y || x == 1 || y == 1, "shapes \(a) and \(b) do not broadcast")
            return x == 1 ? y : x
        }
    }

    /// Combines two tensors element by element with broadcasting.
    @inlinable
    public static func broadcast(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        if a.shape == b.shape {
            var result = Tensor(uninitialized: a.shape)
            let output = result.mutablePointer()
            withExtendedLifetime((a, b)) {
                let x = a.pointer
                let y = b.pointer
                parallelFor(a.count, minimumChunk: 16_384) { range in
                    for index in range { output[index] = f(x[index], y[index]) }
                }
            }
            return result
        }
        let shape = broadcastShape(a.shape, b.shape)
        let rank = shape.count
        // Strides of each input over the output's index space (0 where it broadcasts).
        func strides(_ s: [Int]) -> [Int] {
            let padded = Array(repeating: 1, count: rank - s.count) + s
            var result = Array(repeating: 0, count: rank)
            var step = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                result[axis] = padded[axis] == 1 ? 0 : step
                step *= padded[axis]
            }
            return result
        }
        let sa = strides(a.shape)
        let sb = strides(b.shape)
        let inner = shape.last ?? 1
        let innerA = sa.last ?? 0
        let innerB = sb.last ?? 0
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        let rows = result.count / max(inner, 1)
        withExtendedLifetime((a, b)) {
            let x = a.pointer
            let y = b.pointer
            parallelFor(rows, minimumChunk: max(1, 16_384 / max(inner, 1))) { range in
                for row in range {
                    // Offsets of this row in a and b from its multi-index.
                    var rest = row
                    var offsetA = 0
                    var offsetB = 0
                    for axis in stride(from: rank - 2, through: 0, by: -1) {
                        let index = rest % shape[axis]
                        rest /= shape[axis]
                        offsetA += index * sa[axis]
                        offsetB += index * sb[axis]
                    }
                    let o = output + row * inner
                    for j in 0..<inner { o[j] = f(x[offsetA + j * innerA], y[offsetB + j * innerB]) }
                }
            }
        }
        return result
    }

    /// Element-wise sum with broadcasting.
    public static func + (a: Tensor, b: Tensor) -> Tensor { deviceBinary(a, b, op: 3, commutes: true) ?? broadcast(a, b, +) }
    /// Element-wise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor { deviceBinary(a, b, op: 5, commutes: false) ?? broadcast(a, b, -) }
    /// Element-wise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor { deviceBinary(a, b, op: 4, commutes: true) ?? broadcast(a, b, *) }

    /// Adds `other` (same shape) into this tensor in place, scaled by `alpha`.
    public mutating func add(_ other: Tensor, scaledBy alpha: Float = 1) {
        precondition(shape == other.shape, "add needs equal shapes, got \(shape) and \(other.shape)")
        if let device = Tensor.device(of: self, other) {
            let addend = alpha == 1 ? other.onDevice(device) : other.onDevice(device).scaled(by: alpha)
            self = Tensor(device: onDevice(device) + addend)
            return
        }
        let output = mutablePointer()
        withExtendedLifetime(other) {
            let input = other.pointer
            parallelFor(count, minimumChunk: 16_384) { range in
                for index in range { output[index] += alpha * input[index] }
            }
        }
    }
}
