import Tensors

/// A LoRA layer's change as a dense weight: the products its form defines, checked against the layer it patches.
extension LoRADelta {
    /// ΔW in Float32 with `shape` (the patched weight's: [out, in] or [out, in, kh, kw]); throws `wrongShape` naming
    /// `key` and `file` when the parts do not multiply out to it.
    func weight(shape: [Int], key: String, file: String) throws(AddOnFileError) -> Tensor {
        let count = shape.reduce(1, *)
        func mismatch(_ detail: String) -> AddOnFileError {
            AddOnFileError(
                .wrongShape, file: file,
                "layer \(key): \(detail), but the model's weight is \(shape); the LoRA was made for another model")
        }
        let result: Tensor
        switch self {
        case .lowRank(let down, let up):
            result = try Self.lowRank(down: down, up: up, out: shape[0], mismatch: mismatch)
        case .hadamard(let w1a, let w1b, let w2a, let w2b):
            let first = try Self.product(w1a, w1b, mismatch: mismatch)
            let second = try Self.product(w2a, w2b, mismatch: mismatch)
            guard first.shape == second.shape else {
                throw mismatch("its two Hadamard factors are \(first.shape) and \(second.shape)")
            }
            result = first * second
        case .kronecker(let w1, let w2):
            result = try Self.kronecker(w1, w2, shape: shape, mismatch: mismatch)
        case .full(let diff):
            result = diff
        }
        guard result.count == count, result.rank < 2 || result.shape[0] == shape[0] else {
            throw mismatch("its change has shape \(result.shape)")
        }
        return result.reshaped(shape)
    }

    /// up · down for dense layers and convolutions: the kernel on the down (kohya LoCon, PEFT) or on the up.
    private static func lowRank(down: Tensor, up: Tensor, out: Int, mismatch: (String) -> AddOnFileError) throws(AddOnFileError) -> Tensor {
        let rank = down.shape[0]
        guard up.rank >= 2, up.shape[1] == rank else { throw mismatch("its down is \(down.shape) and its up \(up.shape), which do not multiply") }
        let upKernel = up.count / (up.shape[0] * rank)
        if upKernel == 1 { return up.reshaped([up.shape[0], rank]).matmul(down.reshaped([rank, -1])) }
        // A k×k up after a 1×1 down: ΔW[o, i, h, w] = Σ_r up[o, r, h, w] · down[r, i].
        guard up.rank == 4, down.count / rank == down.shape[1] else {
            throw mismatch("its up \(up.shape) and down \(down.shape) are both convolutions")
        }
        let (o, kh, kw) = (up.shape[0], up.shape[2], up.shape[3])
        let rows = up.permuted([0, 2, 3, 1]).reshaped([o * kh * kw, rank]).matmul(down.reshaped([rank, -1]))
        return rows.reshaped([o, kh, kw, down.shape[1]]).permuted([0, 3, 1, 2])
    }

    /// a · b with b's trailing dimensions flattened, kept as [rows, …].
    private static func product(_ a: Tensor, _ b: Tensor, mismatch: (String) -> AddOnFileError) throws(AddOnFileError) -> Tensor {
        let rank = b.shape[0]
        guard a.rank >= 2, a.count == a.shape[0] * rank else { throw mismatch("its factors \(a.shape) and \(b.shape) do not multiply") }
        return a.reshaped([a.shape[0], rank]).matmul(b.reshaped([rank, -1]))
    }

    /// w1 ⊗ w2 laid out as the patched weight [out, in, kh, kw]: w1 [o1, i1], w2 [o2, i2·kh·kw] with o1·o2 = out and
    /// i1·i2 = in; ΔW[a·o2 + b, c·i2 + d, h, w] = w1[a, c] · w2[b, d, h, w] (torch.kron of w1 and a 4-D w2).
    private static func kronecker(_ w1: LoRAFactor, _ w2: LoRAFactor, shape: [Int], mismatch: (String) -> AddOnFileError) throws(AddOnFileError)
        -> Tensor
    {
        let first: Tensor
        switch w1 {
        case .whole(let tensor): first = tensor
        case .pair(let a, let b): first = try product(a, b, mismatch: mismatch)
        }
        guard first.rank >= 2, first.count == first.shape[0] * first.shape[1] else { throw mismatch("its first Kronecker factor is \(first.shape)") }
        let (o1, i1) = (first.shape[0], first.shape[1])
        let kernel = shape.count == 4 ? shape[2] * shape[3] : 1
        guard shape[0] % o1 == 0, shape[1] % i1 == 0 else { throw mismatch("its first Kronecker factor is \(first.shape)") }
        let (o2, i2) = (shape[0] / o1, shape[1] / i1)
        let second: Tensor
        switch w2 {
        case .whole(let tensor): second = tensor
        case .pair(let a, let b): second = try product(a, b, mismatch: mismatch)
        }
        guard second.count == o2 * i2 * kernel else { throw mismatch("its Kronecker factors are \(first.shape) and \(second.shape)") }
        let a = first.scalars
        let b = second.scalars
        let columns = shape[1] * kernel
        var values = [Float](repeating: 0, count: shape[0] * columns)
        for row1 in 0..<o1 {
            for row2 in 0..<o2 {
                let row = (row1 * o2 + row2) * columns
                for column1 in 0..<i1 {
                    let factor = a[row1 * i1 + column1]
                    let source = row2 * i2 * kernel
                    let target = row + column1 * i2 * kernel
                    for index in 0..<(i2 * kernel) { values[target + index] = factor * b[source + index] }
                }
            }
        }
        return Tensor(shape: [shape[0], columns], values: values)
    }
}
