/// Convolutions over activations too large to hold twice: the input is produced a band of rows at a time
/// (normalised, upsampled) and the output consumed a band at a time, so that neither the transformed input
/// nor a second full-size copy ever exists. The VAE decoder at 1024×1024 uses it for its full-resolution levels.
extension Tensor {
    /// Convolves (stride 1, "same" zero padding, square odd kernel) the NCHW input of `batch` images of `height`
    /// rows that `input(image, rows)` yields a band at a time ([1, C, rows.count, W], rows inside the image), giving
    /// each band of at most `bandRows` output rows ([1, O, rows.count, W]) to `output(image, rows, band)` in order,
    /// top to bottom. Each band reads its kernel's halo of rows above and below (zeros past the image's edges).
    public static func conv2dInBands(
        batch: Int, height: Int, weight: Tensor, bias: Tensor?, bandRows: Int,
        input: (_ image: Int, _ rows: Range<Int>) -> Tensor,
        output: (_ image: Int, _ rows: Range<Int>, _ band: Tensor) -> Void
    ) {
        precondition(bandRows > 0, "bands need at least one row")
        for image in 0..<batch {
            var top = 0
            while top < height {
                let bottom = min(top + bandRows, height)
                let band = conv2dRows(top..<bottom, height: height, weight: weight, bias: bias) { input(image, $0) }
                output(image, top..<bottom, band)
                top = bottom
            }
        }
        // The bands' buffers were freed into the allocator's heaps, where they would stay.
        BufferPool.returnFreePages()
    }

    /// Output rows `rows` ([1, O, rows.count, W]) of the convolution (stride 1, "same" zero padding, square odd
    /// kernel) of one image of `height` rows, whose input rows (inside the image) `input` yields: the rows and the
    /// kernel's halo above and below them, zeros past the image's edges.
    public static func conv2dRows(
        _ rows: Range<Int>, height: Int, weight: Tensor, bias: Tensor?, input: (Range<Int>) -> Tensor
    ) -> Tensor {
        let kernel = weight.shape[2]
        precondition(
            weight.rank == 4 && kernel == weight.shape[3] && kernel % 2 == 1 && rows.lowerBound >= 0 && rows.upperBound <= height,
            "banded convolution needs a square odd kernel and rows inside the image, got \(weight.shape), \(rows) of \(height)")
        let halo = kernel / 2
        let (low, high) = (max(rows.lowerBound - halo, 0), min(rows.upperBound + halo, height))
        var band = input(low..<high)
        precondition(band.rank == 4 && band.shape[2] == high - low, "a band of \(high - low) rows came back as \(band.shape)")
        guard halo > 0 else { return band.conv2d(weight: weight, bias: bias) }
        // Rows past the image's edges are the convolution's zero padding; the columns are padded by the
        // convolution itself, whose extra output rows (centred on the halo) are dropped.
        band = band.padded(top: halo - (rows.lowerBound - low), left: 0, bottom: halo - (high - rows.upperBound), right: 0)
        return band.conv2d(weight: weight, bias: bias, padding: halo).slice(axis: 2, range: halo..<(halo + rows.count))
    }

    /// Rows `rows` of image `image` of an NCHW Float32 tensor, as [1, C, rows.count, W].
    public func rows(_ rows: Range<Int>, image: Int) -> Tensor {
        precondition(rank == 4 && rows.lowerBound >= 0 && rows.upperBound <= shape[2], "rows \(rows) of \(shape)")
        let (channels, height, width) = (shape[1], shape[2], shape[3])
        var result = Tensor(uninitialized: [1, channels, rows.count, width])
        let output = result.mutablePointer()
        withExtendedLifetime(self) {
            for c in 0..<channels {
                (output + c * rows.count * width)
                    .update(from: pointer + ((image * channels + c) * height + rows.lowerBound) * width, count: rows.count * width)
            }
        }
        return result
    }

    /// Writes `band` ([1, C, rows.count, W]) over rows `rows` of image `image`.
    public mutating func setRows(_ rows: Range<Int>, image: Int, to band: Tensor) {
        precondition(
            rank == 4 && band.shape == [1, shape[1], rows.count, shape[3]] && rows.upperBound <= shape[2],
            "rows \(rows) of \(shape) cannot take \(band.shape)")
        let (channels, height, width) = (shape[1], shape[2], shape[3])
        let output = mutablePointer()
        withExtendedLifetime(band) {
            for c in 0..<channels {
                (output + ((image * channels + c) * height + rows.lowerBound) * width)
                    .update(from: band.pointer + c * rows.count * width, count: rows.count * width)
            }
        }
    }

    /// The mean and inverse deviation `groupNorm` computes for each (sample, group), index n·groups + g: to
    /// normalise bands of this tensor (`groupNorm(…, mean:, inverseStd:)`) exactly as the whole would be.
    public func groupStatistics(groups: Int, epsilon: Float) -> (mean: [Float], inverseStd: [Float]) {
        precondition(rank >= 2 && shape[1] % groups == 0, "group statistics need channels divisible by \(groups), got \(shape)")
        let units = shape[0] * groups
        let length = count / units
        var mean = [Float](repeating: 0, count: units)
        var inverse = [Float](repeating: 0, count: units)
        withExtendedLifetime(self) {
            mean.withUnsafeMutableBufferPointer { means in
                inverse.withUnsafeMutableBufferPointer { inverses in
                    parallelFor(units) { range in
                        for unit in range {
                            (means[unit], inverses[unit]) = Tensor.moments(pointer + unit * length, length, epsilon: epsilon)
                        }
                    }
                }
            }
        }
        return (mean, inverse)
    }

    /// Rows a band may hold so that it takes about `bytes` bytes (at least one), for an NCHW activation of `channels`
    /// × `width`; a multiple of 4 minus 2, so that the band and its two halo rows fill whole Winograd tiles.
    public static func bandRows(channels: Int, width: Int, bytes: Int) -> Int {
        let rows = bytes / max(channels * width * MemoryLayout<Float>.size, 1)
        return max(2, rows - (rows + 2) % 4)
    }
}
