import Tensors

/// The VAE decoder's full-resolution levels a band of rows at a time. At 1024×1024 SDXL's decoder holds 256-channel
/// maps of 1 GiB; run whole, a resnet block keeps its input, the input's group-normed copy and two outputs, and an
/// upsampler its input, the upsampled copy and the output. In bands, group norm + SiLU and nearest upsampling are
/// applied to each band as the convolution reads it (with the whole map's statistics, so the result is the same
/// computation) and the second convolution writes over the first one's output: a block holds its input and one
/// output. Only activations of at least `VAE.bandedBytes` take this path; smaller ones run whole, as before.
/// When the VAE decoder works in bands, and how large the bands are.
public struct DecodeBands: Sendable {
    /// Activations of at least this many bytes are convolved in bands (a resnet block's input, an upsampler's
    /// output, the output layer's input); smaller ones run whole.
    public var fromBytes: Int
    /// About how many bytes one band of input holds (at least two rows).
    public var bandBytes: Int

    /// An upsampler's output of at least this many bytes is never held: the resnet block after it recomputes its
    /// bands (three upsampling convolutions instead of one).
    public var recomputeFromBytes: Int

    /// Bands from 256 MiB, of about 32 MiB, upsampler outputs recomputed from 1 GiB: at 512×512 SD's last two
    /// levels run in bands; at 1024×1024 SDXL's last three, and its last upsampler's output is never held.
    public static let standard = DecodeBands(fromBytes: 256 << 20, bandBytes: 32 << 20, recomputeFromBytes: 1 << 30)

    /// Bands from `fromBytes` of about `bandBytes` each, upsampler outputs recomputed from `recomputeFromBytes`.
    public init(fromBytes: Int, bandBytes: Int, recomputeFromBytes: Int = Int.max) {
        self.fromBytes = fromBytes
        self.bandBytes = bandBytes
        self.recomputeFromBytes = recomputeFromBytes
    }

    /// Whether an activation of `floats` values takes the banded path (never inside a tiled decode, whose tiles
    /// are small and whose group norms take shared statistics).
    func apply(floats: Int) -> Bool {
        SharedGroupStatistics.current == nil && floats * MemoryLayout<Float>.size >= fromBytes
    }

    /// Whether an upsampler output of `floats` values is recomputed by the block after it instead of held.
    func recompute(floats: Int) -> Bool {
        SharedGroupStatistics.current == nil && floats * MemoryLayout<Float>.size >= recomputeFromBytes
    }

    /// Rows of one band of an activation of `channels` × `width`.
    func rows(channels: Int, width: Int) -> Int { Tensor.bandRows(channels: channels, width: width, bytes: bandBytes) }
}

extension ResnetBlock {
    /// The block without a time embedding (the VAE's), in bands: conv1 reads norm1 + SiLU of `x` a band at a
    /// time; conv2 reads norm2 + SiLU of conv1's output and writes its bands, plus the shortcut, over that output.
    func inBands(_ x: Tensor, _ bands: DecodeBands) -> Tensor {
        inBands(
            shape: x.shape, statistics: norm1.statistics(of: x), bands: bands,
            input: { image, rows in x.rows(rows, image: image) })
    }

    /// The block applied to `upsample(y)` without ever holding that 4× map: the upsampler's bands are computed
    /// when needed — once for norm1's statistics, once for conv1, once for the shortcut — trading two more
    /// upsampling convolutions for the map's memory (1 GiB at SDXL's 1024×1024).
    func afterUpsampleInBands(_ y: Tensor, upsample: Upsample, _ bands: DecodeBands) -> Tensor {
        let shape = [y.shape[0], upsample.conv.outputs, 2 * y.shape[2], 2 * y.shape[3]]
        let input = { (image: Int, rows: Range<Int>) in upsample.rows(rows, of: y, image: image) }
        var moments: [SharedGroupStatistics.Moments] = []
        for image in 0..<shape[0] {
            var merged: [SharedGroupStatistics.Moments]?
            let step = bands.rows(channels: shape[1], width: shape[3])
            for top in stride(from: 0, to: shape[2], by: step) {
                let band = input(image, top..<min(top + step, shape[2]))
                let part = band.groupMoments(groups: norm1.groups, rows: 0..<band.shape[2], columns: 0..<band.shape[3])
                merged = merged.map { zip($0, part).map(SharedGroupStatistics.merge) } ?? part
            }
            moments += merged ?? []
        }
        return inBands(shape: shape, statistics: norm1.statistics(from: moments), bands: bands, input: input)
    }

    /// The banded block over an input of `shape` whose rows `input` yields and whose norm1 `statistics` are known.
    private func inBands(
        shape: [Int], statistics first: (mean: [Float], inverseStd: [Float]), bands: DecodeBands,
        input: (_ image: Int, _ rows: Range<Int>) -> Tensor
    ) -> Tensor {
        let (batch, height, width) = (shape[0], shape[2], shape[3])
        var h = Tensor(uninitialized: [batch, conv1.outputs, height, width])
        Tensor.conv2dInBands(
            batch: batch, height: height, weight: conv1.weight, bias: conv1.bias,
            bandRows: bands.rows(channels: shape[1], width: width),
            input: { image, rows in norm1.band(input(image, rows), image: image, statistics: first) },
            output: { image, rows, band in h.setRows(rows, image: image, to: band) })
        let second = norm2.statistics(of: h)
        // Each band overwrites rows the next band reads as its upper halo: keep that row as it was.
        var halo: Tensor?
        Tensor.conv2dInBands(
            batch: batch, height: height, weight: conv2.weight, bias: conv2.bias,
            bandRows: bands.rows(channels: h.shape[1], width: width),
            input: { image, rows in
                var band = h.rows(rows, image: image)
                if let halo, rows.lowerBound > 0 { band.setRows(0..<1, image: 0, to: halo) }
                return norm2.band(band, image: image, statistics: second)
            },
            output: { image, rows, band in
                halo = rows.upperBound < height ? h.rows((rows.upperBound - 1)..<rows.upperBound, image: image) : nil
                var out = band
                let residual = input(image, rows)
                out.add(shortcut.map { $0(residual) } ?? residual)
                h.setRows(rows, image: image, to: out)
            })
        return h
    }
}

extension Upsample {
    /// The upsampler in bands: the convolution reads nearest-upsampled bands of `x`, never the whole 4× copy.
    func inBands(_ x: Tensor, _ bands: DecodeBands) -> Tensor {
        let (batch, height, width) = (x.shape[0], 2 * x.shape[2], 2 * x.shape[3])
        var out = Tensor(uninitialized: [batch, conv.outputs, height, width])
        Tensor.conv2dInBands(
            batch: batch, height: height, weight: conv.weight, bias: conv.bias,
            bandRows: bands.rows(channels: x.shape[1], width: width),
            input: { image, rows in Upsample.nearestRows(rows, of: x, image: image) },
            output: { image, rows, band in out.setRows(rows, image: image, to: band) })
        return out
    }

    /// Rows `rows` of image `image` of the upsampler's output for input `x`, computed from `x` alone.
    func rows(_ rows: Range<Int>, of x: Tensor, image: Int) -> Tensor {
        Tensor.conv2dRows(rows, height: 2 * x.shape[2], weight: conv.weight, bias: conv.bias) {
            Upsample.nearestRows($0, of: x, image: image)
        }
    }

    /// Rows `rows` of the nearest-neighbour 2× upsampling of image `image` of `x`.
    static func nearestRows(_ rows: Range<Int>, of x: Tensor, image: Int) -> Tensor {
        let source = (rows.lowerBound / 2)..<((rows.upperBound + 1) / 2)
        let upsampled = x.rows(source, image: image).upsampledNearest2x()
        let skip = rows.lowerBound - 2 * source.lowerBound
        return upsampled.slice(axis: 2, range: skip..<(skip + rows.count))
    }
}

extension GroupNorm {
    /// This norm's statistics of the whole of `x`, for normalising it a band at a time.
    func statistics(of x: Tensor) -> (mean: [Float], inverseStd: [Float]) {
        x.groupStatistics(groups: groups, epsilon: epsilon)
    }

    /// The statistics per (sample, group) that `moments` (merged over bands) give, as `statistics(of:)` would.
    func statistics(from moments: [SharedGroupStatistics.Moments]) -> (mean: [Float], inverseStd: [Float]) {
        (
            moments.map { Float($0.mean) },
            moments.map { Float(1 / ($0.m2 / Swift.max($0.count, 1) + Double(epsilon)).squareRoot()) }
        )
    }

    /// Normalises a band of image `image` (followed by SiLU) with the whole image's `statistics`.
    func band(_ band: Tensor, image: Int, statistics: (mean: [Float], inverseStd: [Float])) -> Tensor {
        let units = (image * groups)..<((image + 1) * groups)
        return band.groupNorm(
            groups: groups, weight: weight, bias: bias, mean: Array(statistics.mean[units]),
            inverseStd: Array(statistics.inverseStd[units]), silu: true)
    }
}

extension Conv2d {
    /// Convolves group norm + SiLU of `x` a band at a time (the decoder's output layer at full resolution).
    func afterNormInBands(_ x: Tensor, norm: GroupNorm, _ bands: DecodeBands) -> Tensor {
        let (batch, height, width) = (x.shape[0], x.shape[2], x.shape[3])
        let statistics = norm.statistics(of: x)
        var out = Tensor(uninitialized: [batch, outputs, height, width])
        Tensor.conv2dInBands(
            batch: batch, height: height, weight: weight, bias: bias,
            bandRows: bands.rows(channels: x.shape[1], width: width),
            input: { image, rows in norm.band(x.rows(rows, image: image), image: image, statistics: statistics) },
            output: { image, rows, band in out.setRows(rows, image: image, to: band) })
        return out
    }
}
