import Foundation

/// Activations, arithmetic, attention and the shape operations of the UNet on a Vulkan device.
extension DeviceTensor {
    /// SiLU: x · σ(x).
    public func silu() -> DeviceTensor { unary(0) }
    /// GELU with the exact erf form (`Tensor.gelu`).
    public func gelu() -> DeviceTensor { unary(1) }
    /// Quick-GELU of OpenAI's CLIP: x · σ(1.702 x).
    public func quickGelu() -> DeviceTensor { unary(6) }
    /// Multiplies every element by `factor`.
    public func scaled(by factor: Float) -> DeviceTensor { unary(2, alpha: factor) }

    /// GEGLU: the last dimension's halves (a, g) → a · gelu(g) (`Tensor.geglu`).
    public func geglu() -> DeviceTensor {
        let width = shape[rank - 1]
        ShapeCheck.geglu(shape)
        var outShape = shape
        outShape[rank - 1] = width / 2
        let result = device.uninitialized(outShape)
        device.dispatch(
            "geglu", buffers: [buffer, result.buffer], push: [UInt32(result.count), UInt32(width / 2)],
            groups: VulkanDevice.flatGroups(result.count))
        return result
    }

    /// a + b, b broadcast (same shape, or one run of a's dimensions such as [C, 1, 1] over NCHW or [F] over rows).
    public static func + (a: DeviceTensor, b: DeviceTensor) -> DeviceTensor { a.binary(3, b) }
    /// a · b elementwise, b broadcast as for `+`.
    public static func * (a: DeviceTensor, b: DeviceTensor) -> DeviceTensor { a.binary(4, b) }
    /// a − b, b broadcast as for `+`.
    public static func - (a: DeviceTensor, b: DeviceTensor) -> DeviceTensor { a.binary(5, b) }

    private func unary(_ op: UInt32, alpha: Float = 1) -> DeviceTensor {
        let result = device.uninitialized(shape)
        device.dispatch(
            "elementwise", buffers: [buffer, buffer, result.buffer], push: [UInt32(count), op, 1, 1, alpha.bitPattern],
            groups: VulkanDevice.flatGroups(count))
        return result
    }

    private func binary(_ op: UInt32, _ other: DeviceTensor) -> DeviceTensor {
        let inner = DeviceTensor.broadcastInner(shape, other.shape)
        let result = device.uninitialized(shape)
        device.dispatch(
            "elementwise", buffers: [buffer, other.buffer, result.buffer],
            push: [UInt32(count), op, UInt32(inner), UInt32(max(other.count, 1)), Float(1).bitPattern],
            groups: VulkanDevice.flatGroups(count))
        return result
    }

    /// Whether `b` broadcasts over `a` as the elementwise kernel can (see `broadcastInner`).
    static func broadcasts(_ b: [Int], over a: [Int]) -> Bool {
        guard b.count <= a.count else { return false }
        let padded = [Int](repeating: 1, count: a.count - b.count) + b
        guard let first = padded.firstIndex(where: { $0 != 1 }), let last = padded.lastIndex(where: { $0 != 1 }) else { return true }
        return (first...last).allSatisfy { padded[$0] == a[$0] }
    }

    /// How many of a's elements share one of b's when b (right-aligned) matches a run of a's dimensions and is 1
    /// elsewhere: b's element for a's element i is b[(i / inner) % b.count].
    static func broadcastInner(_ a: [Int], _ b: [Int]) -> Int {
        precondition(b.count <= a.count, "cannot broadcast \(b) over \(a)")
        let padded = [Int](repeating: 1, count: a.count - b.count) + b
        guard let first = padded.firstIndex(where: { $0 != 1 }), let last = padded.lastIndex(where: { $0 != 1 }) else {
            return a.reduce(1, *)
        }
        precondition(
            (first...last).allSatisfy { padded[$0] == a[$0] },
            "the device broadcasts one run of dimensions only: \(b) over \(a)")
        return a[(last + 1)...].reduce(1, *)
    }

    /// Swaps the last two dimensions: [..., R, C] → [..., C, R] (`Tensor.transposed(rank − 2, rank − 1)`).
    public func transposedLastTwo() -> DeviceTensor {
        precondition(rank >= 2, "transposing needs two dimensions, got \(shape)")
        var outShape = shape
        outShape.swapAt(rank - 2, rank - 1)
        let result = device.uninitialized(outShape)
        device.dispatch(
            "transpose", buffers: [buffer, result.buffer], push: [UInt32(count), UInt32(shape[rank - 2]), UInt32(shape[rank - 1])],
            groups: VulkanDevice.flatGroups(count))
        return result
    }

    /// Nearest-neighbour upsampling of NCHW maps by `factor` (`Tensor.upsampledNearest(by:)`).
    public func upsampledNearest(by factor: Int) -> DeviceTensor {
        precondition(rank == 4 && factor >= 1, "upsampling needs NCHW maps and a factor ≥ 1")
        let result = device.uninitialized([shape[0], shape[1], shape[2] * factor, shape[3] * factor])
        device.dispatch(
            "upsample_nearest", buffers: [buffer, result.buffer],
            push: [UInt32(result.count), UInt32(shape[2]), UInt32(shape[3]), UInt32(factor)],
            groups: VulkanDevice.flatGroups(result.count))
        return result
    }

    /// Joins `parts` along `axis` (`Tensor.concat`); every other dimension must agree.
    public static func concat(_ parts: [DeviceTensor], axis: Int) -> DeviceTensor {
        precondition(!parts.isEmpty, "concat needs at least one tensor")
        var outShape = parts[0].shape
        outShape[axis] = parts.map { $0.shape[axis] }.reduce(0, +)
        let rows = outShape[..<axis].reduce(1, *)
        let result = parts[0].device.uninitialized(outShape)
        let dstWidth = result.count / max(rows, 1)
        var offset = 0
        for part in parts {
            var expected = outShape
            expected[axis] = part.shape[axis]
            precondition(part.shape == expected, "concat along \(axis): \(part.shape) does not fit \(outShape)")
            let srcWidth = part.count / max(rows, 1)
            part.device.dispatch(
                "copy_rows", buffers: [part.buffer, result.buffer],
                push: [UInt32(part.count), UInt32(max(srcWidth, 1)), UInt32(dstWidth), UInt32(offset)],
                groups: VulkanDevice.flatGroups(part.count))
            offset += srcWidth
        }
        return result
    }

    /// Multi-head attention softmax(Q·Kᵀ/√d)·V, fused (`Tensor.attention`): query [B, Nq, H·d], key [B, Nk, H·d],
    /// value [B, Nk, H·dv] → [B, Nq, H·dv]; d and dv at most 512 (a kernel with larger key tiles up to 128).
    public static func attention(query: DeviceTensor, key: DeviceTensor, value: DeviceTensor, heads: Int, causal: Bool = false)
        -> DeviceTensor
    {
        ShapeCheck.attention(query: query.shape, key: key.shape, value: value.shape)
        let (batch, queries, width) = (query.shape[0], query.shape[1], query.shape[2])
        let (keys, valueWidth) = (key.shape[1], value.shape[2])
        let (dim, valueDim) = (width / heads, valueWidth / heads)
        precondition(dim <= 512 && valueDim <= 512, "the device's attention takes heads of at most 512 channels, not \(dim)")
        let result = query.device.uninitialized([batch, queries, valueWidth])
        let scale = 1 / Float(dim).squareRoot()
        let push = [queries, keys, heads, dim, valueDim, causal ? 1 : 0].map { UInt32($0) } + [scale.bitPattern]
        query.device.dispatch(
            max(dim, valueDim) <= 128 ? "attention" : "attention_wide", buffers: [query.buffer, key.buffer, value.buffer, result.buffer], push: push,
            groups: ((queries + 63) / 64, heads, batch))
        return result
    }
}

extension VulkanDevice {
    /// The sinusoidal timestep embedding (`Tensor.timestepEmbedding`), [timesteps, dimension], computed on the device
    /// from frequencies rounded as the CPU backend rounds them.
    public func timestepEmbedding(
        _ timesteps: [Float], dimension: Int, flipSinToCos: Bool = true, downscaleFreqShift: Float = 0,
        maxPeriod: Float = 10_000
    ) -> DeviceTensor {
        let half = dimension / 2
        let frequencies = (0..<half).map { i -> Float in
            Float(exp(Double(-logf(maxPeriod) * Float(i) / (Float(half) - downscaleFreqShift))))
        }
        let times = upload(Tensor(shape: [timesteps.count], values: timesteps))
        let table = upload(Tensor(shape: [half], values: frequencies))
        // An odd dimension leaves its last column zero, as on the CPU.
        let result = upload(Tensor(zeros: [timesteps.count, dimension]))
        dispatch(
            "timestep_embedding", buffers: [times.buffer, table.buffer, result.buffer],
            push: [UInt32(timesteps.count), UInt32(half), flipSinToCos ? 1 : 0, UInt32(dimension)],
            groups: ((timesteps.count * half + 63) / 64, 1, 1))
        return result
    }
}
