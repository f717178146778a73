import CKernels

/// Group norm and layer norm, with statistics accumulated in Double for accuracy.
extension Tensor {
    /// Group normalisation of an [N, C, ...] tensor: statistics over each group of
    /// C/groups channels and all positions, then a per-channel affine transform; with `silu`,
    /// SiLU applied to each channel while it is still in cache (what every resnet block does next).
    public func groupNorm(groups: Int, weight: Tensor, bias: Tensor, epsilon: Float = 1e-5, silu: Bool = false) -> Tensor {
        if let device {
            let result = onDevice(device).groupNorm(
                groups: groups, weight: device.parameter(weight), bias: device.parameter(bias), epsilon: epsilon, silu: silu)
            return Tensor(device: result)
        }
        return normalizingGroups(groups, weight: weight, bias: bias, silu: silu) { _, values, length in
            Tensor.moments(values, length, epsilon: epsilon)
        }
    }

    /// Group normalisation with statistics given per (sample, group), index n·groups + g,
    /// instead of taken from this tensor: a tiled VAE decode normalises every tile with the
    /// whole image's statistics.
    public func groupNorm(groups: Int, weight: Tensor, bias: Tensor, mean: [Float], inverseStd: [Float], silu: Bool = false) -> Tensor {
        precondition(
            mean.count == shape[0] * groups && inverseStd.count == mean.count,
            "group norm statistics need \(shape[0] * groups) values, got \(mean.count)")
        return normalizingGroups(groups, weight: weight, bias: bias, silu: silu) { unit, _, _ in (mean[unit], inverseStd[unit]) }
    }

    /// Count, mean and sum of squared deviations (Chan's M2) per (sample, group) over the
    /// positions rows × columns of an [N, C, H, W] tensor, for combining across tiles.
    public func groupMoments(groups: Int, rows: Range<Int>, columns: Range<Int>) -> [(count: Double, mean: Double, m2: Double)] {
        precondition(
            rank == 4 && shape[1] % groups == 0 && rows.lowerBound >= 0 && rows.upperBound <= shape[2]
                && columns.lowerBound >= 0 && columns.upperBound <= shape[3], "group moments of \(shape) over \(rows)×\(columns)")
        let (batch, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        let perGroup = channels / groups
        let count = Double(perGroup * rows.count * columns.count)
        return withExtendedLifetime(self) {
            (0..<batch * groups).map { unit in
                let n = unit / groups
                let g = unit % groups
                func planes(_ body: (UnsafePointer<Float>) -> Void) {
                    for c in 0..<perGroup {
                        let plane = pointer + ((n * channels + g * perGroup + c) * height) * width
                        for y in rows { body(plane + y * width + columns.lowerBound) }
                    }
                }
                var sum = 0.0
                planes { row in
                    var block: Float = 0
                    for x in 0..<columns.count { block += row[x] }
                    sum += Double(block)
                }
                let mean = count > 0 ? sum / count : 0
                let meanF = Float(mean)
                var m2 = 0.0
                planes { row in
                    var block: Float = 0
                    for x in 0..<columns.count {
                        let d = row[x] - meanF
                        block += d * d
                    }
                    m2 += Double(block)
                }
                return (count, mean, m2)
            }
        }
    }

    /// Normalises each (sample, group) with the mean and inverse deviation `statistics`
    /// gives for it (unit index, its first value, its length), then the affine transform (and SiLU).
    private func normalizingGroups(
        _ groups: Int, weight: Tensor, bias: Tensor, silu: Bool,
        statistics: (Int, UnsafePointer<Float>, Int) -> (Float, Float)
    ) -> Tensor {
        precondition(
            rank >= 2 && shape[1] % groups == 0,
            "group norm needs channels divisible by \(groups) groups, got \(shape)")
        let batch = shape[0]
        let channels = shape[1]
        precondition(weight.count == channels && bias.count == channels, "group norm affine needs \(channels) values")
        let spatial = count / max(batch * channels, 1)
        let perGroup = channels / groups
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        withExtendedLifetime((self, weight, bias)) {
            let input = pointer
            let gamma = weight.pointer
            let beta = bias.pointer
            parallelFor(batch * groups) { range in
                for unit in range {
                    let n = unit / groups
                    let g = unit % groups
                    let start = (n * channels + g * perGroup) * spatial
                    let (mean, inverse) = statistics(unit, input + start, perGroup * spatial)
                    for c in 0..<perGroup {
                        let channel = g * perGroup + c
                        let scale = gamma[channel] * inverse
                        let shift = beta[channel] - mean * scale
                        let x = input + start + c * spatial
                        let y = output + start + c * spatial
                        for j in 0..<spatial { y[j] = x[j] * scale + shift }
                        if silu { ck_silu(y, y, spatial) }
                    }
                }
            }
        }
        return result
    }

    /// Layer normalisation over the last dimension with per-feature weight and bias.
    public func layerNorm(weight: Tensor, bias: Tensor, epsilon: Float = 1e-5) -> Tensor {
        if let device {
            return Tensor(device: onDevice(device).layerNorm(weight: device.parameter(weight), bias: device.parameter(bias), epsilon: epsilon))
        }
        let features = shape[rank - 1]
        ShapeCheck.layerNorm(features: features, weight: weight.count, bias: bias.count)
        let rows = count / max(features, 1)
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        withExtendedLifetime((self, weight, bias)) {
            let input = pointer
            let gamma = weight.pointer
            let beta = bias.pointer
            parallelFor(rows, minimumChunk: max(1, 4096 / max(features, 1))) { range in
                for row in range {
                    let x = input + row * features
                    let y = output + row * features
                    let (mean, inverse) = Tensor.moments(x, features, epsilon: epsilon)
                    for j in 0..<features { y[j] = (x[j] - mean) * inverse * gamma[j] + beta[j] }
                }
            }
        }
        return result
    }

    /// Mean and 1/√(biased variance + ε) of `length` values, two-pass for stability.
    @usableFromInline
    static func moments(_ x: UnsafePointer<Float>, _ length: Int, epsilon: Float) -> (Float, Float) {
        var sum: Double = 0
        var block: Float = 0
        // Float partial sums over short runs vectorise; Double totals keep them accurate.
        var index = 0
        while index < length {
            let end = min(index + 256, length)
            block = 0
            for j in index..<end { block += x[j] }
            sum += Double(block)
            index = end
        }
        let mean = sum / Double(max(length, 1))
        let meanF = Float(mean)
        var squares: Double = 0
        index = 0
        while index < length {
            let end = min(index + 256, length)
            block = 0
            for j in index..<end {
                let d = x[j] - meanF
                block += d * d
            }
            squares += Double(block)
            index = end
        }
        let variance = squares / Double(max(length, 1))
        return (meanF, Float(1 / (variance + Double(epsilon)).squareRoot()))
    }
}
