import Tensors

/// The VAE's single-head self-attention over pixels (diffusers' `Attention` in the mid block).
struct PixelAttention {
    let norm: GroupNorm
    let attention: MultiHeadAttention

    init(_ reader: WeightReader, groups: Int) throws {
        norm = try GroupNorm(reader, "group_norm", groups: groups, epsilon: 1e-6)
        attention = try MultiHeadAttention(diffusers: reader, heads: 1, projectionBias: true)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let tokens = norm(x).reshaped([n, c, height * width]).transposed(1, 2)
        var out = attention(tokens).transposed(1, 2).reshaped(x.shape)
        out.add(x)
        return out
    }
}

/// SD's AutoencoderKL: the encoder maps pixels in [-1, 1] to a Gaussian over latents,
/// the decoder maps latents back to pixels. Latents the UNet sees are scaled by
/// `config.scalingFactor` (done by the pipeline, not here).
public struct VAE {
    /// The settings it was built with.
    public let config: VAEConfig
    let encoderIn: Conv2d
    let encoderDown: [(resnets: [ResnetBlock], downsample: Conv2d?)]
    let encoderMid: (ResnetBlock, PixelAttention, ResnetBlock)
    let encoderNormOut: GroupNorm, encoderOut: Conv2d, quantConv: Conv2d?
    let postQuantConv: Conv2d?, decoderIn: Conv2d
    let decoderMid: (ResnetBlock, PixelAttention, ResnetBlock)
    let decoderUp: [(resnets: [ResnetBlock], upsample: Upsample?)]
    let decoderNormOut: GroupNorm, decoderOut: Conv2d

    /// Builds the VAE from weights with diffusers' names.
    public init(config: VAEConfig, weights: [String: Tensor], source: String = "vae") throws {
        self.config = config
        let reader = WeightReader(weights, source: source)
        let groups = config.normNumGroups, eps: Float = 1e-6
        let levels = config.blockOutChannels.count
        func mid(_ scope: WeightReader) throws -> (ResnetBlock, PixelAttention, ResnetBlock) {
            (try ResnetBlock(scope.scope("resnets.0"), groups: groups, epsilon: eps),
             try PixelAttention(scope.scope("attentions.0"), groups: groups),
             try ResnetBlock(scope.scope("resnets.1"), groups: groups, epsilon: eps))
        }
        let encoder = reader.scope("encoder")
        encoderIn = try Conv2d(encoder, "conv_in")
        encoderDown = try (0..<levels).map { level in
            let block = encoder.scope("down_blocks.\(level)")
            // The encoder pads (0, 1, 0, 1) itself and then convolves with stride 2 and no padding.
            return (resnets: try (0..<config.layersPerBlock).map { try ResnetBlock(block.scope("resnets.\($0)"), groups: groups, epsilon: eps) },
                    downsample: level < levels - 1 ? try Conv2d(block.scope("downsamplers.0"), "conv", stride: 2, padding: 0) : nil)
        }
        encoderMid = try mid(encoder.scope("mid_block"))
        encoderNormOut = try GroupNorm(encoder, "conv_norm_out", groups: groups, epsilon: eps)
        encoderOut = try Conv2d(encoder, "conv_out")
        quantConv = config.useQuantConv ? try Conv2d(reader, "quant_conv") : nil
        postQuantConv = config.usePostQuantConv ? try Conv2d(reader, "post_quant_conv") : nil
        let decoder = reader.scope("decoder")
        decoderIn = try Conv2d(decoder, "conv_in")
        decoderMid = try mid(decoder.scope("mid_block"))
        decoderUp = try (0..<levels).map { level in
            let block = decoder.scope("up_blocks.\(level)")
            return (resnets: try (0...config.layersPerBlock).map { try ResnetBlock(block.scope("resnets.\($0)"), groups: groups, epsilon: eps) },
                    upsample: level < levels - 1 ? try Upsample(block.scope("upsamplers.0")) : nil)
        }
        decoderNormOut = try GroupNorm(decoder, "conv_norm_out", groups: groups, epsilon: eps)
        decoderOut = try Conv2d(decoder, "conv_out")
    }

    /// The posterior over latents for pixels [N, 3, H, W] in [-1, 1]: mean and log-variance [N, C, H/8, W/8].
    public func encode(_ pixels: Tensor) -> (mean: Tensor, logVariance: Tensor) {
        var h = encoderIn(pixels)
        for level in encoderDown {
            for resnet in level.resnets { h = resnet(h, time: nil) }
            if let downsample = level.downsample { h = downsample(h.padded(top: 0, left: 0, bottom: 1, right: 1)) }
        }
        h = encoderMid.2(encoderMid.1(encoderMid.0(h, time: nil)), time: nil)
        h = encoderOut(encoderNormOut(h).silu())
        if let quantConv { h = quantConv(h) }
        let halves = h.chunked(2, axis: 1)
        return (halves[0], halves[1].map { Swift.min(Swift.max($0, -30), 20) })
    }

    /// A latent sample mean + σ·noise from the posterior (the mean when `noise` is nil).
    public func sample(mean: Tensor, logVariance: Tensor, noise: Tensor?) -> Tensor {
        guard let noise else { return mean }
        let std = logVariance.map { fastExp(0.5 * $0) }
        return mean + std * noise
    }

    /// Pixels [N, 3, 8H, 8W] (about [-1, 1]) for latents [N, C, H, W] (unscaled).
    public func decode(_ latents: Tensor) -> Tensor {
        var h = decoderIn(postQuantConv.map { $0(latents) } ?? latents)
        h = decoderMid.2(decoderMid.1(decoderMid.0(h, time: nil)), time: nil)
        for level in decoderUp {
            for resnet in level.resnets { h = resnet(h, time: nil) }
            if let upsample = level.upsample { h = upsample(h) }
        }
        return decoderOut(decoderNormOut(h).silu())
    }
}
