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
    /// The Vulkan device its forward runs on (nil: the CPU); inputs move there and results back, weights are copied
    /// to it as float16 on first use.
    public var device: VulkanDevice?

    /// Builds the VAE from weights with diffusers' names.
    public init(config: VAEConfig, weights: [String: Tensor], source: String = "vae") throws {
        self.config = config
        let reader = WeightReader(weights, source: source)
        let groups = config.normNumGroups
        let eps: Float = 1e-6
        let levels = config.blockOutChannels.count
        func mid(_ scope: WeightReader) throws -> (ResnetBlock, PixelAttention, ResnetBlock) {
            (
                try ResnetBlock(scope.scope("resnets.0"), groups: groups, epsilon: eps),
                try PixelAttention(scope.scope("attentions.0"), groups: groups),
                try ResnetBlock(scope.scope("resnets.1"), groups: groups, epsilon: eps)
            )
        }
        let encoder = reader.scope("encoder")
        encoderIn = try Conv2d(encoder, "conv_in")
        encoderDown = try (0..<levels).map { level in
            let block = encoder.scope("down_blocks.\(level)")
            // The encoder pads (0, 1, 0, 1) itself and then convolves with stride 2 and no padding.
            return (
                resnets: try (0..<config.layersPerBlock).map { try ResnetBlock(block.scope("resnets.\($0)"), groups: groups, epsilon: eps) },
                downsample: level < levels - 1 ? try Conv2d(block.scope("downsamplers.0"), "conv", stride: 2, padding: 0) : nil
            )
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
            return (
                resnets: try (0...config.layersPerBlock).map { try ResnetBlock(block.scope("resnets.\($0)"), groups: groups, epsilon: eps) },
                upsample: level < levels - 1 ? try Upsample(block.scope("upsamplers.0")) : nil
            )
        }
        decoderNormOut = try GroupNorm(decoder, "conv_norm_out", groups: groups, epsilon: eps)
        decoderOut = try Conv2d(decoder, "conv_out")
    }

    /// The posterior over latents for pixels [N, 3, H, W] in [-1, 1]: mean and log-variance [N, C, H/8, W/8].
    public func encode(_ pixels: Tensor) -> (mean: Tensor, logVariance: Tensor) {
        if let device, pixels.device !== device {
            let moments = encode(pixels.moved(to: device))
            return (moments.mean.moved(to: nil), moments.logVariance.moved(to: nil))
        }
        var h = encoderIn(pixels)
        for level in encoderDown {
            for resnet in level.resnets { h = resnet(h, time: nil) }
            if let downsample = level.downsample { h = downsample(h.padded(top: 0, left: 0, bottom: 1, right: 1)) }
        }
        h = encoderMid.2(encoderMid.1(encoderMid.0(h, time: nil)), time: nil)
        h = encoderOut(encoderNormOut(h, silu: true))
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

    /// Pixels [N, 3, 8H, 8W] (about [-1, 1]) for latents [N, C, H, W] (unscaled). Activations of at least
    /// `bands.fromBytes` go through their resnet blocks and upsamplers a band of rows at a time (VAE+Bands.swift).
    public func decode(_ latents: Tensor, bands: DecodeBands = .standard) -> Tensor {
        // A tiled decode learning group-norm statistics stops each tile once it has passed
        // the norm being learnt; what is returned then is never used.
        let shared = SharedGroupStatistics.current
        // On a device the whole decode runs in one go (bands are the host's way of bounding memory), and a tiled
        // decode's shared statistics are the host's: tiles decode there.
        if let device, shared == nil, latents.device !== device {
            return decode(latents.moved(to: device), bands: DecodeBands(fromBytes: .max, bandBytes: .max)).moved(to: nil)
        }
        var h = decoderIn(postQuantConv.map { $0(latents) } ?? latents)
        h = decoderMid.0(h, time: nil)
        if shared?.tileIsDone == true { return h }
        h = decoderMid.1(h)
        if shared?.tileIsDone == true { return h }
        h = decoderMid.2(h, time: nil)
        // An upsampler whose output is too large to hold is left to the next block (`afterUpsampleInBands`).
        var pending: Upsample?
        for level in decoderUp {
            if let upsample = pending, level.resnets.isEmpty {
                h = upsample.inBands(h, bands)
                pending = nil
            }
            for resnet in level.resnets {
                if shared?.tileIsDone == true { return h }
                if let upsample = pending {
                    h = resnet.afterUpsampleInBands(h, upsample: upsample, bands)
                    pending = nil
                } else {
                    h = bands.apply(floats: h.count) ? resnet.inBands(h, bands) : resnet(h, time: nil)
                }
            }
            if shared?.tileIsDone == true { return h }
            if let upsample = level.upsample {
                if bands.recompute(floats: 4 * h.count) {
                    pending = upsample
                } else {
                    h = bands.apply(floats: 4 * h.count) ? upsample.inBands(h, bands) : upsample(h)
                }
            }
        }
        if let upsample = pending { h = upsample.inBands(h, bands) }
        if bands.apply(floats: h.count) { return decoderOut.afterNormInBands(h, norm: decoderNormOut, bands) }
        return decoderOut(decoderNormOut(h, silu: true))
    }

    /// The decoder's group norms: two per resnet block, the mid block's attention, the output.
    var decoderNormCount: Int {
        2 * (2 + decoderUp.reduce(0) { $0 + $1.resnets.count }) + 1 + 1
    }

    /// Pixels per latent along each side: 2^(levels − 1) (8 for SD's VAE).
    public var downscaleFactor: Int { 1 << (config.blockOutChannels.count - 1) }

    /// Decodes tile by tile (tiles of `tile` latents, overlapping by `overlap` of a tile)
    /// and blends each tile into its upper and left neighbours with linear ramps, as
    /// diffusers' `enable_tiling` does, so that memory follows the tile size, not the
    /// image size. Tiles are decoded one row at a time; only the previous row is kept.
    /// `statistics` says whether tiles share the whole image's group-norm statistics.
    public func decodeTiled(
        _ latents: Tensor, tile: Int = 64, overlap: Float = 0.25,
        statistics: TileStatistics = .shared
    ) -> Tensor {
        let factor = downscaleFactor
        let stride = max(1, Int(Float(tile) * (1 - overlap)))
        let (height, width) = (latents.shape[2], latents.shape[3])
        guard height > tile || width > tile else { return decode(latents) }
        let shared = SharedGroupStatistics()
        if statistics == .shared {
            for _ in 0..<decoderNormCount {
                learnStatistics(latents, tile: tile, stride: stride, into: shared)
                shared.finishPass()
            }
            shared.finishLearning()
        }
        return VAE.tiled(
            latents, tile: tile, stride: stride, blend: Int(Float(tile * factor) * overlap),
            keep: tile * factor - Int(Float(tile * factor) * overlap),
            outputShape: [latents.shape[0], config.outChannels, height * factor, width * factor],
            outputPosition: { $0 * factor },
            transform: { piece in
                guard statistics == .shared else { return decode(piece) }
                shared.beginTile(height: piece.shape[2], width: piece.shape[3], rows: 0..<0, columns: 0..<0)
                return SharedGroupStatistics.$current.withValue(shared) { decode(piece) }
            })
    }

    /// One pass of `SharedGroupStatistics`: runs every tile up to the norm being learnt and
    /// records its moments over the part of the tile that the tile owns.
    func learnStatistics(_ latents: Tensor, tile: Int, stride: Int, into shared: SharedGroupStatistics) {
        let (height, width) = (latents.shape[2], latents.shape[3])
        for top in Swift.stride(from: 0, to: height, by: stride) {
            for left in Swift.stride(from: 0, to: width, by: stride) {
                let piece = latents.slice(axis: 2, range: top..<min(top + tile, height))
                    .slice(axis: 3, range: left..<min(left + tile, width))
                shared.beginTile(
                    height: piece.shape[2], width: piece.shape[3],
                    rows: TileStatistics.ownedRange(start: top, stride: stride, tile: tile, length: height),
                    columns: TileStatistics.ownedRange(start: left, stride: stride, tile: tile, length: width))
                _ = SharedGroupStatistics.$current.withValue(shared) { decode(piece) }
            }
        }
    }

    /// Encodes tile by tile (tiles of `tile` pixels, overlapping by `overlap`), blending
    /// the tiles' moments in latent space as diffusers' tiled encode does; returns the
    /// posterior's mean and log-variance.
    public func encodeTiled(_ pixels: Tensor, tile: Int = 512, overlap: Float = 0.25) -> (mean: Tensor, logVariance: Tensor) {
        let factor = downscaleFactor
        guard pixels.shape[2] > tile || pixels.shape[3] > tile else { return encode(pixels) }
        let latentTile = tile / factor
        let blend = Int(Float(latentTile) * overlap)
        let moments = VAE.tiled(
            pixels, tile: tile, stride: Int(Float(tile) * (1 - overlap)), blend: blend, keep: latentTile - blend,
            outputShape: [pixels.shape[0], 2 * config.latentChannels, pixels.shape[2] / factor, pixels.shape[3] / factor],
            outputPosition: { $0 / factor },
            transform: { piece in
                let (mean, logVariance) = encode(piece)
                return Tensor.concat([mean, logVariance], axis: 1)
            })
        let halves = moments.chunked(2, axis: 1)
        return (halves[0], halves[1])
    }

    /// Runs `transform` on overlapping tiles of `input` and assembles the outputs: each tile
    /// blends into its upper and left neighbours over `blend` output pixels, then its top-left
    /// `keep × keep` lands at `outputPosition` of its input position.
    static func tiled(
        _ input: Tensor, tile: Int, stride: Int, blend: Int, keep: Int, outputShape: [Int],
        outputPosition: (Int) -> Int, transform: (Tensor) -> Tensor
    ) -> Tensor {
        let (height, width) = (input.shape[2], input.shape[3])
        var output = Tensor(zeros: outputShape)
        var previousRow: [Tensor] = []
        for top in Swift.stride(from: 0, to: height, by: stride) {
            var row: [Tensor] = []
            for (column, left) in Swift.stride(from: 0, to: width, by: stride).enumerated() {
                let piece = input.slice(axis: 2, range: top..<min(top + tile, height))
                    .slice(axis: 3, range: left..<min(left + tile, width))
                var result = transform(piece)
                if !previousRow.isEmpty { result.blendEdge(from: previousRow[column], extent: blend, vertical: true) }
                if let previous = row.last { result.blendEdge(from: previous, extent: blend, vertical: false) }
                row.append(result)
                output.paste(result, top: outputPosition(top), left: outputPosition(left), rows: keep, columns: keep)
            }
            previousRow = row
        }
        return output
    }
}
