/// The operations the upscalers and the tiny autoencoder need beyond the UNet's and the VAE's: sub-pixel
/// rearrangements (pixel shuffle and unshuffle), integer nearest-neighbour upsampling, reflection padding, and the
/// rectifier family of activations.
extension Tensor {
    /// PyTorch's `pixel_shuffle`: [N, C·r², H, W] → [N, C, H·r, W·r], channel c·r² + i·r + j landing at row offset i,
    /// column offset j.
    public func pixelShuffled(_ factor: Int) -> Tensor {
        precondition(rank == 4 && shape[1] % (factor * factor) == 0, "pixel shuffle by \(factor) needs [N, C·\(factor * factor), H, W], got \(shape)")
        let (n, c, h, w) = (shape[0], shape[1] / (factor * factor), shape[2], shape[3])
        return reshaped([n, c, factor, factor, h, w]).permuted([0, 1, 4, 2, 5, 3]).reshaped([n, c, h * factor, w * factor])
    }

    /// PyTorch's `pixel_unshuffle`, the inverse of `pixelShuffled`: [N, C, H·r, W·r] → [N, C·r², H, W].
    public func pixelUnshuffled(_ factor: Int) -> Tensor {
        precondition(
            rank == 4 && shape[2] % factor == 0 && shape[3] % factor == 0,
            "pixel unshuffle by \(factor) needs [N, C, H, W] with H and W multiples of it, got \(shape)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2] / factor, shape[3] / factor)
        return reshaped([n, c, h, factor, w, factor]).permuted([0, 1, 3, 5, 2, 4]).reshaped([n, c * factor * factor, h, w])
    }

    /// Nearest-neighbour upsampling of an NCHW tensor by an integer factor (each pixel becomes factor × factor), as
    /// `F.interpolate(mode="nearest", scale_factor=factor)`.
    public func upsampledNearest(by factor: Int) -> Tensor {
        if let device, factor > 1 { return Tensor(device: onDevice(device).upsampledNearest(by: factor)) }
        precondition(rank == 4 && factor >= 1, "upsample needs [N, C, H, W] and a positive factor, got \(shape), \(factor)")
        if factor == 1 { return self }
        if factor == 2 { return upsampledNearest2x() }
        let (planes, height, width) = (shape[0] * shape[1], shape[2], shape[3])
        var result = Tensor(uninitialized: [shape[0], shape[1], height * factor, width * factor])
        let output = result.mutablePointer()
        let wide = width * factor
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(planes * height, minimumChunk: max(1, 8192 / max(wide, 1))) { range in
                for line in range {
                    let source = input + line * width
                    let target = output + line * factor * wide
                    for x in 0..<width {
                        for k in 0..<factor { target[x * factor + k] = source[x] }
                    }
                    for copy in 1..<factor { (target + copy * wide).update(from: target, count: wide) }
                }
            }
        }
        return result
    }

    /// Average pooling of an NCHW tensor over `factor` × `factor` cells (rows and columns past the last whole cell
    /// are dropped), as `F.avg_pool2d(x, factor)`.
    public func averagePooled(_ factor: Int) -> Tensor {
        precondition(
            rank == 4 && factor >= 1 && shape[2] >= factor && shape[3] >= factor,
            "average pooling by \(factor) needs [N, C, H, W] of at least that size, got \(shape)")
        if factor == 1 { return self }
        let (planes, height, width) = (shape[0] * shape[1], shape[2], shape[3])
        let (outHeight, outWidth) = (height / factor, width / factor)
        var result = Tensor(uninitialized: [shape[0], shape[1], outHeight, outWidth])
        let output = result.mutablePointer()
        let area = Float(factor * factor)
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(planes * outHeight, minimumChunk: 16) { range in
                for line in range {
                    let (plane, y) = line.quotientAndRemainder(dividingBy: outHeight)
                    for x in 0..<outWidth {
                        var sum: Float = 0
                        for dy in 0..<factor {
                            let row = input + (plane * height + y * factor + dy) * width + x * factor
                            for dx in 0..<factor { sum += row[dx] }
                        }
                        output[line * outWidth + x] = sum / area
                    }
                }
            }
        }
        return result
    }

    /// An NCHW tensor shrunk to `height` × `width` by area averaging (each output pixel the mean of the input area it
    /// covers, fractional edges weighted by their share, as PIL's BOX filter): the resampling for downscaling
    /// without aliasing. Each side must be at most the input's.
    public func resizedByArea(height newHeight: Int, width newWidth: Int) -> Tensor {
        precondition(
            rank == 4 && newHeight >= 1 && newWidth >= 1 && newHeight <= shape[2] && newWidth <= shape[3],
            "area resizing shrinks [N, C, H, W] to a positive size no larger, got \(shape) to \(newHeight)×\(newWidth)")
        let (planes, height, width) = (shape[0] * shape[1], shape[2], shape[3])
        if newHeight == height && newWidth == width { return self }
        /// Per output index, the input indices it covers and their weights (summing to 1).
        func taps(_ length: Int, _ newLength: Int) -> [[(index: Int, weight: Float)]] {
            let ratio = Double(length) / Double(newLength)
            return (0..<newLength).map { i in
                let (start, end) = (Double(i) * ratio, Double(i + 1) * ratio)
                return (Int(start)..<Swift.min(length, Int(end.rounded(.up)))).compactMap { j in
                    let share = Swift.min(end, Double(j + 1)) - Swift.max(start, Double(j))
                    return share > 0 ? (j, Float(share / ratio)) : nil
                }
            }
        }
        let (rowTaps, columnTaps) = (taps(height, newHeight), taps(width, newWidth))
        var result = Tensor(uninitialized: [shape[0], shape[1], newHeight, newWidth])
        let output = result.mutablePointer()
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(planes * newHeight, minimumChunk: 8) { range in
                var line = [Float](repeating: 0, count: width)
                for index in range {
                    let (plane, y) = index.quotientAndRemainder(dividingBy: newHeight)
                    for x in 0..<width { line[x] = 0 }
                    for (row, weight) in rowTaps[y] {
                        let source = input + (plane * height + row) * width
                        for x in 0..<width { line[x] += source[x] * weight }
                    }
                    for x in 0..<newWidth {
                        var sum: Float = 0
                        for (column, weight) in columnTaps[x] { sum += line[column] * weight }
                        output[index * newWidth + x] = sum
                    }
                }
            }
        }
        return result
    }

    /// Pads the bottom and right of an NCHW tensor by reflection (the edge row or column is not repeated), as
    /// `F.pad(x, (0, right, 0, bottom), mode="reflect")`; each pad must be smaller than that side.
    public func reflectPadded(bottom: Int, right: Int) -> Tensor {
        precondition(
            rank == 4 && bottom >= 0 && right >= 0 && bottom < shape[2] && right < shape[3],
            "reflection padding needs [N, C, H, W] and pads smaller than the sides, got \(shape), \(bottom), \(right)")
        if bottom == 0 && right == 0 { return self }
        let (planes, height, width) = (shape[0] * shape[1], shape[2], shape[3])
        let (newHeight, newWidth) = (height + bottom, width + right)
        var result = Tensor(uninitialized: [shape[0], shape[1], newHeight, newWidth])
        let output = result.mutablePointer()
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(planes * newHeight, minimumChunk: 64) { range in
                for line in range {
                    let (plane, y) = line.quotientAndRemainder(dividingBy: newHeight)
                    let sourceRow = y < height ? y : 2 * (height - 1) - y
                    let source = input + (plane * height + sourceRow) * width
                    let target = output + line * newWidth
                    target.update(from: source, count: width)
                    for x in width..<newWidth { target[x] = source[2 * (width - 1) - x] }
                }
            }
        }
        return result
    }

    /// max(x, 0) elementwise.
    public func relu() -> Tensor { map { Swift.max($0, 0) } }

    /// x for x ≥ 0, slope·x below (PyTorch's `LeakyReLU(negative_slope)`).
    public func leakyRelu(slope: Float) -> Tensor { map { $0 >= 0 ? $0 : $0 * slope } }

    /// PyTorch's `PReLU` over NCHW: x for x ≥ 0, slopes[c]·x below, one slope per channel (or one for all).
    public func prelu(slopes: Tensor) -> Tensor {
        precondition(
            rank == 4 && (slopes.count == shape[1] || slopes.count == 1), "PReLU needs [N, C, H, W] and C or 1 slopes, got \(shape), \(slopes.shape)")
        let (channels, plane) = (shape[1], shape[2] * shape[3])
        var result = Tensor(uninitialized: shape)
        let output = result.mutablePointer()
        let values = slopes.widened().scalars
        withExtendedLifetime(self) {
            let input = pointer
            parallelFor(shape[0] * channels, minimumChunk: max(1, 16_384 / max(plane, 1))) { range in
                for index in range {
                    let slope = values.count == 1 ? values[0] : values[index % channels]
                    let (source, target) = (input + index * plane, output + index * plane)
                    for p in 0..<plane { target[p] = source[p] >= 0 ? source[p] : source[p] * slope }
                }
            }
        }
        return result
    }
}
