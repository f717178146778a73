import Foundation
import Tensors

/// Residuals a ControlNet adds to the UNet: one per skip connection (12 for SD 1.x/2.x) and one for the middle.
public struct ControlResiduals {
    /// Added to the skip connections, in the order the encoder produces them.
    public var down: [Tensor]
    /// Added to the middle block's output.
    public var middle: Tensor

    /// Makes residuals.
    public init(down: [Tensor], middle: Tensor) {
        self.down = down
        self.middle = middle
    }

    /// Sums residuals of several ControlNets.
    public static func + (a: ControlResiduals, b: ControlResiduals) -> ControlResiduals {
        ControlResiduals(down: zip(a.down, b.down).map { $0 + $1 }, middle: a.middle + b.middle)
    }
}

/// One resolution level of the UNet's encoder: resnets, optional transformers, and a downsampler.
struct DownLevel {
    let resnets: [ResnetBlock]
    let transformers: [SpatialTransformer]
    let downsample: Downsample?
}

/// SD's UNet2DConditionModel: predicts the noise (or v) in latents at a timestep,
/// conditioned on text through cross-attention.
public struct UNet {
    /// The time embedding, encoder and middle block: shared with ControlNet, which copies them.
    struct Encoder {
        let config: UNetConfig
        let timeLinear1: Linear, timeLinear2: Linear
        /// SDXL's added embedding (pooled text and micro-conditioning); nil for SD 1.x/2.x.
        let addedEmbedding: AddedEmbedding?
        let convIn: Conv2d
        let down: [DownLevel]
        let midResnet1: ResnetBlock, midTransformer: SpatialTransformer, midResnet2: ResnetBlock

        init(config: UNetConfig, reader: WeightReader) throws {
            try config.validate(path: reader.source)
            self.config = config
            let groups = config.normNumGroups
            let eps = Float(config.normEps)
            let levels = config.blockOutChannels.count
            timeLinear1 = try Linear(reader, "time_embedding.linear_1", inputs: config.blockOutChannels[0])
            timeLinear2 = try Linear(reader, "time_embedding.linear_2")
            addedEmbedding = config.isXL ? try AddedEmbedding(reader, config: config) : nil
            convIn = try Conv2d(reader, "conv_in")
            guard convIn.inputs == config.inChannels else {
                throw WeightsError(reader.source, "conv_in takes \(convIn.inputs) channels, the config says \(config.inChannels)")
            }
            down = try (0..<levels).map { level in
                let block = reader.scope("down_blocks.\(level)")
                let attends = config.downBlockTypes[level].hasPrefix("CrossAttn")
                return DownLevel(
                    resnets: try (0..<config.layersPerBlock).map { try ResnetBlock(block.scope("resnets.\($0)"), groups: groups, epsilon: eps) },
                    transformers: attends
                        ? try (0..<config.layersPerBlock).map {
                            try SpatialTransformer(block.scope("attentions.\($0)"), heads: config.heads(block: level), groups: groups)
                        } : [],
                    downsample: level < levels - 1 ? try Downsample(block.scope("downsamplers.0")) : nil)
            }
            let mid = reader.scope("mid_block")
            midResnet1 = try ResnetBlock(mid.scope("resnets.0"), groups: groups, epsilon: eps)
            midTransformer = try SpatialTransformer(mid.scope("attentions.0"), heads: config.heads(block: levels - 1), groups: groups)
            midResnet2 = try ResnetBlock(mid.scope("resnets.1"), groups: groups, epsilon: eps)
        }

        /// The activated time embedding for `timestep`, repeated for `batch` rows, with SDXL's added embedding
        /// summed in before the activation (diffusers: `emb = emb + aug_emb`, activated in each resnet).
        func timeEmbedding(_ timestep: Float, batch: Int, added: AddedConditioning? = nil) -> Tensor {
            let sinusoid = Tensor.timestepEmbedding(
                Array(repeating: timestep, count: batch), dimension: config.blockOutChannels[0],
                flipSinToCos: config.flipSinToCos, downscaleFreqShift: Float(config.freqShift))
            var embedding = timeLinear2(timeLinear1(sinusoid).silu())
            if let addedEmbedding {
                guard let added else { preconditionFailure("an SDXL UNet needs the added conditioning (pooled text and time ids)") }
                precondition(added.timeIDs.count == batch, "added conditioning has \(added.timeIDs.count) rows for a batch of \(batch)")
                embedding.add(addedEmbedding(added))
            }
            return embedding.silu()
        }

        /// Runs the down path: the skip connections (after conv_in, each resnet or
        /// transformer, and each downsampler) and the lowest-resolution features.
        /// `added` is summed after conv_in (ControlNet's conditioning embedding); `shortcuts` may reuse DeepCache's
        /// features and merge tokens (`UNetShortcuts`).
        func encode(
            _ sample: Tensor, time: Tensor, context: Tensor, added: Tensor? = nil, shortcuts: UNetShortcuts = UNetShortcuts()
        ) -> (skips: [Tensor], hidden: Tensor) {
            var h = convIn(sample)
            if let added { h.add(added) }
            var skips = [h]
            let (cache, batch) = (shortcuts.cache, sample.shape[0])
            for (block, level) in down.enumerated() {
                let first = skips.count
                let outputs = cache.outputs("down.block.\(block)", .down(block: block, layer: 0), batch: batch) {
                    for (index, resnet) in level.resnets.enumerated() {
                        let place = FeatureCache.Place.down(block: block, layer: index)
                        h = cache.run("down.resnet.\(block).\(index)", place, batch: batch) { resnet(h, time: time) }
                        if !level.transformers.isEmpty {
                            h = cache.run("down.attentions.\(block).\(index)", place, batch: batch) {
                                level.transformers[index](h, context: context, mergeRatio: shortcuts.mergeRatio(for: h))
                            }
                        }
                        skips.append(h)
                    }
                    if let downsample = level.downsample {
                        let place = FeatureCache.Place.down(block: block, layer: level.resnets.count)
                        h = cache.run("down.downsampler.\(block)", place, batch: batch) { downsample(h) }
                        skips.append(h)
                    }
                    return [h] + skips[first...]
                }
                // A reused block gives back its output and its skip connections together, as the block returns them.
                h = outputs[0]
                skips = Array(skips[..<first]) + outputs.dropFirst()
            }
            return (skips, h)
        }

        /// The middle block: resnet, transformer, resnet.
        func middle(_ h: Tensor, time: Tensor, context: Tensor) -> Tensor {
            midResnet2(midTransformer(midResnet1(h, time: time), context: context), time: time)
        }
    }

    /// The settings it was built with.
    public var config: UNetConfig { encoder.config }

    /// SDXL: the added embedding, whose input width tells the base (6 numbers) from the refiner (5); nil otherwise.
    var addedEmbedding: AddedEmbedding? { encoder.addedEmbedding }
    let encoder: Encoder
    let up: [(resnets: [ResnetBlock], transformers: [SpatialTransformer], upsample: Upsample?)]
    let normOut: GroupNorm, convOut: Conv2d
    /// The Vulkan device its forward runs on (nil: the CPU); inputs move there and results back, weights are copied
    /// to it as float16 on first use.
    public var device: VulkanDevice?

    /// Builds the UNet from weights with diffusers' names.
    public init(config: UNetConfig, weights: [String: Tensor], source: String = "unet") throws {
        let reader = WeightReader(weights, source: source)
        encoder = try Encoder(config: config, reader: reader)
        let groups = config.normNumGroups
        let eps = Float(config.normEps)
        let levels = config.blockOutChannels.count
        up = try (0..<levels).map { level in
            let block = reader.scope("up_blocks.\(level)")
            let attends = config.upBlockTypes[level].hasPrefix("CrossAttn")
            // Up blocks mirror the down blocks: up block i uses the heads of down block levels−1−i.
            let heads = config.heads(block: levels - 1 - level)
            return (
                resnets: try (0...config.layersPerBlock).map { try ResnetBlock(block.scope("resnets.\($0)"), groups: groups, epsilon: eps) },
                transformers: attends
                    ? try (0...config.layersPerBlock).map {
                        try SpatialTransformer(block.scope("attentions.\($0)"), heads: heads, groups: groups)
                    } : [],
                upsample: level < levels - 1 ? try Upsample(block.scope("upsamplers.0")) : nil
            )
        }
        normOut = try GroupNorm(reader, "conv_norm_out", groups: groups, epsilon: eps)
        convOut = try Conv2d(reader, "conv_out")
    }

    /// Loads a diffusers UNet folder (`config.json` + `diffusion_pytorch_model.safetensors`).
    public static func load(_ folder: URL) throws -> UNet {
        let config = try ModelWeights.readJSON(UNetConfig.self, folder.appendingPathComponent("config.json"))
        let weights = try ModelWeights.componentWeights(folder, stem: "diffusion_pytorch_model", preferFP16: false)
        return try UNet(config: config, weights: weights, source: folder.path)
    }

    /// Predicts noise (or v) for latents [B, C, H, W] at `timestep`, with text context
    /// [B, tokens, width], SDXL's added conditioning (required by SDXL UNets, ignored by others) and optional
    /// ControlNet residuals.
    public func callAsFunction(
        _ sample: Tensor, timestep: Float, context: Tensor, added: AddedConditioning? = nil, control: ControlResiduals? = nil
    ) -> Tensor {
        predict(sample, timestep: timestep, context: context, added: added, control: control, shortcuts: UNetShortcuts())
    }

    /// `callAsFunction` taking `shortcuts` (DeepCache's reused features, token merging).
    func predict(
        _ sample: Tensor, timestep: Float, context: Tensor, added: AddedConditioning?, control: ControlResiduals?, shortcuts: UNetShortcuts
    ) -> Tensor {
        precondition(sample.shape[0] == context.shape[0], "latents and context need the same batch")
        if let device, sample.device !== device {
            let residuals = control.map { ControlResiduals(down: $0.down.map { $0.moved(to: device) }, middle: $0.middle.moved(to: device)) }
            let moved = predict(
                sample.moved(to: device), timestep: timestep, context: context.moved(to: device), added: added, control: residuals,
                shortcuts: shortcuts)
            return moved.moved(to: nil)
        }
        var shortcuts = shortcuts
        shortcuts.latentTokens = sample.shape[2] * sample.shape[3]
        let (cache, batch) = (shortcuts.cache, sample.shape[0])
        let time = encoder.timeEmbedding(timestep, batch: sample.shape[0], added: added)
        var (skips, h) = encoder.encode(sample, time: time, context: context, shortcuts: shortcuts)
        if let control {
            precondition(control.down.count == skips.count, "ControlNet gives \(control.down.count) residuals, the UNet has \(skips.count) skips")
            for index in skips.indices { skips[index].add(control.down[index]) }
        }
        h = cache.run("mid", .middle, batch: batch) { encoder.middle(h, time: time, context: context) }
        if let control { h.add(control.middle) }
        for (index, level) in up.enumerated() {
            // DeepCache counts up blocks and their layers from the top of the UNet, mirroring the down blocks.
            let (block, layers) = (up.count - 1 - index, level.resnets.count)
            let levelSkips = Array(skips.suffix(layers).reversed())
            skips.removeLast(layers)
            h = cache.run("up.block.\(block)", .up(block: block, layer: 0), batch: batch) {
                for (layer, resnet) in level.resnets.enumerated() {
                    let place = FeatureCache.Place.up(block: block, layer: layers - 1 - layer)
                    h = cache.run("up.resnet.\(block).\(layers - 1 - layer)", place, batch: batch) {
                        resnet(Tensor.concat([h, levelSkips[layer]], axis: 1), time: time)
                    }
                    if !level.transformers.isEmpty {
                        h = cache.run("up.attentions.\(block).\(layers - 1 - layer)", place, batch: batch) {
                            level.transformers[layer](h, context: context, mergeRatio: shortcuts.mergeRatio(for: h))
                        }
                    }
                }
                if let upsample = level.upsample {
                    h = cache.run("up.upsampler.\(block)", .up(block: block, layer: 0), batch: batch) { upsample(h) }
                }
                return h
            }
        }
        return convOut(normOut(h, silu: true))
    }
}
