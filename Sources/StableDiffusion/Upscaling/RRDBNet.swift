import Tensors

/// ESRGAN's residual dense block: five 3×3 convolutions, each seeing the input and every earlier output (LeakyReLU
/// 0.2 after the first four), the last scaled by 0.2 and added to the input.
struct ResidualDenseBlock {
    let convs: [Conv2d]

    init(_ reader: WeightReader) throws {
        convs = try (1...5).map { try Conv2d(reader, "conv\($0)") }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var features = [x]
        for conv in convs.dropLast() {
            features.append(conv(Tensor.concat(features, axis: 1)).leakyRelu(slope: 0.2))
        }
        var out = convs[4](Tensor.concat(features, axis: 1)).scaled(by: 0.2)
        out.add(x)
        return out
    }
}

/// ESRGAN's and Real-ESRGAN's RRDBNet (spandrel's `ESRGAN` architecture): a first convolution, a trunk of
/// residual-in-residual dense blocks with a long skip, nearest 2× upsampling steps each followed by a convolution and
/// LeakyReLU, then two convolutions. Real-ESRGAN's ×2 (and ×1) models pixel-unshuffle the image first, so that the
/// network's 4× makes 2× (1×) of the image; spandrel pads such inputs by reflection to the unshuffle factor and crops.
struct RRDBNet {
    let first: Conv2d
    let trunk: [[ResidualDenseBlock]]
    let trunkOut: Conv2d
    let ups: [Conv2d]
    let highResolution: Conv2d, last: Conv2d
    /// The pixel-unshuffle factor of the input (nil: none).
    let unshuffle: Int?

    /// Builds the network from Real-ESRGAN-named weights (`UpscalerKeys.newRRDBNames`): the block count, widths and
    /// scale come from the weights, as spandrel reads them.
    init(_ reader: WeightReader) throws {
        first = try Conv2d(reader, "conv_first")
        let keys = Set(reader.tensors.keys)
        let blockCount = UpscalerKeys.sequenceLength(keys, prefix: "body")
        guard blockCount > 0 else { throw WeightsError(reader.source, "an ESRGAN network needs at least one body.N block") }
        trunk = try (0..<blockCount).map { block in try (1...3).map { try ResidualDenseBlock(reader.scope("body.\(block).rdb\($0)")) } }
        trunkOut = try Conv2d(reader, "conv_body")
        var ups: [Conv2d] = []
        while reader.has("conv_up\(ups.count + 1).weight") { ups.append(try Conv2d(reader, "conv_up\(ups.count + 1)")) }
        self.ups = ups
        highResolution = try Conv2d(reader, "conv_hr")
        last = try Conv2d(reader, "conv_last")
        let (inputs, outputs) = (first.inputs, last.outputs)
        unshuffle = inputs == outputs * 4 ? 2 : inputs == outputs * 16 ? 4 : nil
        guard unshuffle != nil || inputs == outputs else {
            throw WeightsError(
                reader.source, "the first convolution takes \(inputs) channels and the last gives \(outputs): not an image-to-image ESRGAN")
        }
        for block in trunk.flatMap({ $0 }) where block.convs[0].inputs != first.outputs {
            throw WeightsError(reader.source, "the dense blocks take \(block.convs[0].inputs) features, the first convolution gives \(first.outputs)")
        }
    }

    /// Output pixels per input pixel along each side.
    var scale: Int { (1 << ups.count) / (unshuffle ?? 1) }

    /// Image channels in and out.
    var channels: Int { last.outputs }

    /// The upscaled image [N, C, s·H, s·W] for an image [N, C, H, W] in [0, 1].
    func callAsFunction(_ image: Tensor) -> Tensor {
        var x = image
        let (height, width) = (image.shape[2], image.shape[3])
        if let unshuffle {
            x = x.reflectPadded(bottom: (unshuffle - height % unshuffle) % unshuffle, right: (unshuffle - width % unshuffle) % unshuffle)
            x = x.pixelUnshuffled(unshuffle)
        }
        let start = first(x)
        var h = start
        for block in trunk {
            var out = block[2](block[1](block[0](h))).scaled(by: 0.2)
            out.add(h)
            h = out
        }
        h = trunkOut(h)
        h.add(start)
        for up in ups { h = up(h.upsampledNearest2x()).leakyRelu(slope: 0.2) }
        h = last(highResolution(h).leakyRelu(slope: 0.2))
        guard unshuffle != nil else { return h }
        return h.slice(axis: 2, range: 0..<(height * scale)).slice(axis: 3, range: 0..<(width * scale))
    }
}

/// Real-ESRGAN's SRVGGNetCompact (spandrel's `Compact`): 3×3 convolutions with per-channel PReLUs at the input
/// resolution, a last convolution to C·s² channels pixel-shuffled to s×, plus the nearest-upsampled input.
struct CompactNet {
    let convs: [Conv2d]
    let slopes: [Tensor]
    let scale: Int

    /// Builds the network from `body.N` weights: even indices convolutions, odd ones PReLU slopes; the scale from
    /// the last convolution's outputs (C·s², C the input's channels, as spandrel guesses it).
    init(_ reader: WeightReader) throws {
        let length = UpscalerKeys.sequenceLength(Set(reader.tensors.keys), prefix: "body")
        guard length >= 3, length % 2 == 1 else {
            throw WeightsError(
                reader.source, "a Compact network alternates convolutions and PReLUs and ends with a convolution; body has \(length) layers")
        }
        convs = try stride(from: 0, to: length, by: 2).map { try Conv2d(reader, "body.\($0)") }
        slopes = try stride(from: 1, to: length, by: 2).map { try reader.tensor("body.\($0).weight") }
        for (index, slope) in slopes.enumerated() where slope.rank != 1 {
            throw WeightsError(
                reader.source, "body.\(2 * index + 1).weight has shape \(slope.shape); only PReLU activations (one slope per channel) are supported")
        }
        let (inputs, shuffled) = (convs[0].inputs, convs[convs.count - 1].outputs)
        let square = shuffled / inputs
        let root = Int(Double(square).squareRoot().rounded())
        guard shuffled % inputs == 0, root * root == square else {
            throw WeightsError(reader.source, "the last convolution gives \(shuffled) channels, not \(inputs)·s² for the \(inputs) input channels")
        }
        scale = root
    }

    /// Image channels in and out.
    var channels: Int { convs[0].inputs }

    /// The upscaled image [N, C, s·H, s·W] for an image [N, C, H, W] in [0, 1].
    func callAsFunction(_ image: Tensor) -> Tensor {
        var h = image
        for (conv, slope) in zip(convs, slopes) { h = conv(h).prelu(slopes: slope) }
        var out = convs[convs.count - 1](h).pixelShuffled(scale)
        out.add(image.upsampledNearest(by: scale))
        return out
    }
}
