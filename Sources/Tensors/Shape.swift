import Foundation

/// Kernels that move data: concatenation, slicing, resampling, padding, lookups.
extension Tensor {
    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat needs at least one tensor")
        if let device = parts.lazy.compactMap(\.device).first {
            return Tensor(device: DeviceTensor.concat(parts.map { $0.onDevice(device) }, axis: axis))
        }
        let base = parts[0].shape
        precondition(axis >= 0 && axis < base.count, "concat axis \(axis) out of range for \(base)")
        for part in parts {
            precondition(
                part.rank == base.count
                    && zip(part.shape, base).enumerated().allSatisfy { $0.offset == axis || $0.element.0 == $0.element.1 },
                "concat shapes disagree: \(parts.map(\.shape))")
        }
        var shape = base
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let outer = base[..<axis].reduce(1, *)
        let inner = base[(axis + 1)...].reduce(1, *)
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        let outputRow = shape[axis] * inner
        var offset = 0
        for part in parts {
            let chunk = part.shape[axis] * inner
            withExtendedLifetime(part) {
                let input = part.pointer
                for o in 0..<outer {
                    (output + o * outputRow + offset).update(from: input + o * chunk, count: chunk)
                }
            }
            offset += chunk
        }
        return result
    }

    /// Splits along `axis` into `count` equal parts (as `torch.chunk` with an even split).
    public func chunked(_ count: Int, axis: Int) -> [Tensor] {
        precondition(shape[axis] % count == 0, "cannot split \(shape) into \(count) equal parts along \(axis)")
        let size = shape[axis] / count
        return (0..<count).map { slice(axis: axis, range: $0 * size..<($0 + 1) * size) }
    }

    /// A copy of the elements whose index along `axis` falls in `range`, stored as this tensor's are (halves stay
    /// halves: loaders split OpenCLIP's fused q/k/v projections this way).
    public func slice(axis: Int, range: Range<Int>) -> Tensor {
        if let device { return onHostThenBack(device) { $0.slice(axis: axis, range: range) } }
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis], "slice \(range) out of bounds for \(shape)")
        var outShape = shape
        outShape[axis] = range.count
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *) * element.byteCount
        var result = Tensor(uninitialized: outShape, element: element)
        withUnsafeRawBytes { input in
            result.withUnsafeMutableRawBytes { output in
                guard let input = input.baseAddress, let output = output.baseAddress else { return }
                for o in 0..<outer {
                    (output + o * range.count * inner)
                        .copyMemory(from: input + (o * shape[axis] + range.lowerBound) * inner, byteCount: range.count * inner)
                }
            }
        }
        return result
    }

    /// Swaps two dimensions (a copy, contiguous in the new order).
    public func transposed(_ first: Int, _ second: Int) -> Tensor {
        if let device {
            if Set([first, second]) == [rank - 2, rank - 1] { return Tensor(device: onDevice(device).transposedLastTwo()) }
            return onHostThenBack(device) { $0.transposed(first, second) }
        }
        var order = Array(0..<rank)
        order.swapAt(first, second)
        return permuted(order)
    }

    /// Reorders dimensions: result dimension i is this tensor's dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        if let device { return onHostThenBack(device) { $0.permuted(order) } }
        precondition(order.sorted() == Array(0..<rank), "\(order) is not a permutation of 0..<\(rank)")
        let outShape = order.map { shape[$0] }
        var strides = Array(repeating: 1, count: rank)
        for axis in Swift.stride(from: rank - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        let sourceStrides = order.map { strides[$0] }
        var result = Tensor(uninitialized: outShape)
        let output = result.mutablePointer()
        let inner = outShape.last ?? 1
        let innerStride = sourceStrides.last ?? 1
        let rows = count / max(inner, 1)
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(rows, minimumChunk: max(1, 16_384 / max(inner, 1))) { range in
                for row in range {
                    var rest = row
                    var source = 0
                    for axis in Swift.stride(from: rank - 2, through: 0, by: -1) {
                        source += (rest % outShape[axis]) * sourceStrides[axis]
                        rest /= outShape[axis]
                    }
                    let o = output + row * inner
                    for j in 0..<inner { o[j] = input[source + j * innerStride] }
                }
            }
        }
        return result
    }

    /// Nearest-neighbour 2× upsampling of an NCHW tensor (each pixel becomes 2×2).
    public func upsampledNearest2x() -> Tensor {
        if let device { return Tensor(device: onDevice(device).upsampledNearest(by: 2)) }
        precondition(rank == 4, "upsample needs [N, C, H, W], got \(shape)")
        let (planes, height, width) = (shape[0] * shape[1], shape[2], shape[3])
        var result = Tensor(uninitialized: [shape[0], shape[1], height * 2, width * 2])
        let output = result.mutablePointer()
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(planes * height, minimumChunk: max(1, 8192 / max(width, 1))) { range in
                for line in range {
                    let source = input + line * width
                    let target = output + line * 4 * width
                    for x in 0..<width {
                        target[2 * x] = source[x]
                        target[2 * x + 1] = source[x]
                    }
                    (target + 2 * width).update(from: target, count: 2 * width)
                }
            }
        }
        return result
    }

    /// Pads the last two dimensions of an NCHW tensor with zeros (sides may differ).
    public func padded(top: Int, left: Int, bottom: Int, right: Int) -> Tensor {
        if let device { return onHostThenBack(device) { $0.padded(top: top, left: left, bottom: bottom, right: right) } }
        precondition(rank == 4 && min(top, left, bottom, right) >= 0, "pad needs [N, C, H, W] and non-negative sides")
        let (planes, height, width) = (shape[0] * shape[1], shape[2], shape[3])
        let newHeight = height + top + bottom
        let newWidth = width + left + right
        var result = Tensor(zeros: [shape[0], shape[1], newHeight, newWidth])
        let output = result.mutablePointer()
        withExtendedLifetime(self) {
            let input = pointer
            for plane in 0..<planes {
                for row in 0..<height {
                    (output + (plane * newHeight + row + top) * newWidth + left)
                        .update(from: input + (plane * height + row) * width, count: width)
                }
            }
        }
        return result
    }

    /// Rows of an embedding table [vocabulary, width] for each id → [ids.count, width] (Float32; a table stored as
    /// halves has only the rows asked for widened).
    public static func embedding(table: Tensor, ids: [Int]) -> Tensor {
        embedding(table: table, ids: ids, extra: nil, firstExtraID: 0)
    }

    /// Rows of `table` for each id below `firstExtraID`, and rows of `extra` [count, width] for the ids from
    /// `firstExtraID` on (row id − firstExtraID): vectors added to a vocabulary without copying its table
    /// (textual-inversion embeddings).
    public static func embedding(table: Tensor, ids: [Int], extra: Tensor?, firstExtraID: Int) -> Tensor {
        precondition(table.rank == 2, "embedding table must be [vocabulary, width], got \(table.shape)")
        let (vocabulary, width) = (table.shape[0], table.shape[1])
        precondition(extra.map { $0.rank == 2 && $0.shape[1] == width } ?? true, "extra rows must be [count, \(width)]")
        var result = Tensor(uninitialized: [ids.count, width])
        let output = result.mutablePointer()
        withExtendedLifetime((table, extra)) {
            for (row, id) in ids.enumerated() {
                if let extra, id >= firstExtraID {
                    let index = id - firstExtraID
                    precondition(index < extra.shape[0], "token id \(id) beyond the \(extra.shape[0]) added vectors")
                    Tensor.widen(extra.storage, range: index * width..<(index + 1) * width, into: output + row * width)
                    continue
                }
                precondition(id >= 0 && id < vocabulary, "token id \(id) outside the vocabulary of \(vocabulary)")
                Tensor.widen(table.storage, range: id * width..<(id + 1) * width, into: output + row * width)
            }
        }
        return result
    }

    /// Sinusoidal timestep embedding as diffusers' `get_timestep_embedding`:
    /// [sin | cos] of t·e^(−ln(maxPeriod)·i/(half − shift)), or [cos | sin] with `flipSinToCos`.
    public static func timestepEmbedding(
        _ timesteps: [Float], dimension: Int, flipSinToCos: Bool = true,
        downscaleFreqShift: Float = 0, maxPeriod: Float = 10_000
    ) -> Tensor {
        let half = dimension / 2
        var result = Tensor(zeros: [timesteps.count, dimension])
        let output = result.mutablePointer()
        // Frequencies in Float32, as PyTorch computes them, for bit-level agreement.
        let frequencies = (0..<half).map { i -> Float in
            Float(exp(Double(-logf(maxPeriod) * Float(i) / (Float(half) - downscaleFreqShift))))
        }
        for (row, t) in timesteps.enumerated() {
            let line = output + row * dimension
            for i in 0..<half {
                let angle = t * Float(frequencies[i])
                let (sine, cosine) = (Float(sin(Double(angle))), Float(cos(Double(angle))))
                line[flipSinToCos ? half + i : i] = sine
                line[flipSinToCos ? i : half + i] = cosine
            }
        }
        return result
    }
}

/// The shape checks that `Tensor` and `DeviceTensor` both make, kept in one place so that the two backends refuse the
/// same inputs with the same message.
enum ShapeCheck {
    /// `newShape` with its -1 (if any) inferred, checked to hold the `count` elements of `shape`.
    static func reshape(_ shape: [Int], count: Int, to newShape: [Int]) -> [Int] {
        var resolved = newShape
        if let hole = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            resolved[hole] = count / known
        }
        precondition(resolved.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return resolved
    }

    /// GEGLU splits the last dimension in halves, so it must be even.
    static func geglu(_ shape: [Int]) {
        precondition((shape.last ?? 0) % 2 == 0, "geglu needs an even last dimension, got \(shape)")
    }

    /// A dense layer's weight is [out, in] with `in` the input's last dimension.
    static func linear(input: [Int], weight: [Int]) {
        precondition(weight.count == 2 && weight[1] == (input.last ?? 0), "linear weight \(weight) does not take input \(input)")
    }

    /// Checks a convolution's operands and returns its output's height and width.
    static func conv2d(input: [Int], weight: [Int], stride: Int, padding: Int) -> (height: Int, width: Int) {
        precondition(
            input.count == 4 && weight.count == 4 && weight[1] == input[1],
            "conv2d needs input [N,C,H,W] and weight [O,C,kh,kw], got \(input) and \(weight)")
        precondition(stride >= 1 && padding >= 0, "conv2d stride must be ≥ 1 and padding ≥ 0")
        let (kh, kw) = (weight[2], weight[3])
        let outHeight = (input[2] + 2 * padding - kh) / stride + 1
        let outWidth = (input[3] + 2 * padding - kw) / stride + 1
        precondition(outHeight > 0 && outWidth > 0, "conv2d kernel \(kh)×\(kw) larger than padded input \(input)")
        return (outHeight, outWidth)
    }

    /// Layer norm's weight and bias hold one value per feature of the last dimension.
    static func layerNorm(features: Int, weight: Int, bias: Int) {
        precondition(weight == features && bias == features, "layer norm affine needs \(features) values")
    }

    /// Attention takes [B, N, C] query, key and value of one batch, keys and values of one count, queries and keys of
    /// one width.
    static func attention(query: [Int], key: [Int], value: [Int]) {
        precondition(query.count == 3 && key.count == 3 && value.count == 3, "attention needs [B, N, C] tensors")
        precondition(
            key[0] == query[0] && value[0] == query[0] && value[1] == key[1] && key[2] == query[2],
            "attention shapes do not agree: q \(query), k \(key), v \(value)")
    }
}
