// Module StableDiffusion: the engine: weights in every format (Weights/), the networks (Models/), the tokenizer and
// prompt syntax (Tokenizer/), samplers and seeds (Sampling/) and the pipelines (Pipelines/). Imports only Tensors and
// Generation (the request's vocabulary: sampler and noise names, parameters, limits), which it re-exports, as
// `SamplerName` and `NoiseSource` are part of the engine's API.

import Foundation
@_exported import Generation
import Tensors

/// The text-to-image pipeline: text conditioning → sampler loop with classifier-free
/// guidance (conditional and unconditional passes batched into one UNet call) → VAE.
public struct Pipeline {
    /// The text encoders: one for SD 1.x/2.x and the SDXL refiner, CLIP ViT-L then OpenCLIP ViT-bigG for SDXL.
    public private(set) var textEncoders: [TextEncoder]
    /// The denoiser.
    public private(set) var unet: UNet
    /// The autoencoder.
    public private(set) var vae: VAE
    /// Noise schedule and prediction type.
    public let schedulerConfig: SchedulerConfig
    /// How each encoder's prompts are padded to 77 tokens (its tokenizer's config).
    public let paddings: [PaddingStyle]
    /// SDXL: an empty negative prompt conditions on zeros (base models) instead of the encoded empty text.
    public let forceZerosForEmptyPrompt: Bool
    /// Textual-inversion embeddings the prompts may name (`usingEmbeddings`); nil: none.
    public var embeddings: PromptEmbeddings?
    /// A TAESD that decodes instead of the VAE (`--vae taesd`: faster, lower quality); nil: the VAE decodes.
    public var tinyAutoencoder: TinyAutoencoder?

    /// The Vulkan device the networks run on (`running(on:)`); nil: the CPU.
    public var device: VulkanDevice? { unet.device }

    /// This pipeline with its text encoders, UNet, VAE and the ControlNets it is given running on `device` (nil: the
    /// CPU). Only latents, embeddings and images cross; the device keeps float16 copies of the weights. A TAESD
    /// decoder stays on the CPU.
    public func running(on device: VulkanDevice?) -> Pipeline {
        var moved = self
        moved.textEncoders = textEncoders.map { encoder in
            var encoder = encoder
            encoder.device = device
            return encoder
        }
        moved.unet.device = device
        moved.vae.device = device
        return moved
    }

    /// The first text encoder (the only one before SDXL).
    public var textEncoder: TextEncoder { textEncoders[0] }
    /// How the first encoder's prompts are padded.
    public var padding: PaddingStyle { paddings[0] }

    /// Builds every network of a loaded model.
    public init(weights: ModelWeights) throws {
        var encoders = [try TextEncoder(config: weights.textEncoderConfig, weights: weights.textEncoder)]
        var pads = [weights.padTokenID]
        if let second = weights.textEncoder2 {
            encoders.append(try TextEncoder(config: second.config, weights: second.weights, source: "text encoder 2"))
            pads.append(second.padTokenID)
        }
        textEncoders = encoders
        paddings = pads.map { $0 == 0 ? .exclamationMark : .endOfText }
        unet = try UNet(config: weights.unetConfig, weights: weights.unet)
        vae = try VAE(config: weights.vaeConfig, weights: weights.vae)
        schedulerConfig = weights.schedulerConfig
        forceZerosForEmptyPrompt = weights.forceZerosForEmptyPrompt
        if unet.config.isXL {
            let width = encoders.reduce(0) { $0 + $1.config.hiddenSize }
            guard width == unet.config.crossAttentionDim else {
                throw WeightsError(
                    "model", "the text encoders give \(width)-wide context but the UNet's cross-attention takes \(unet.config.crossAttentionDim)")
            }
            guard encoders.last?.projection != nil else {
                throw WeightsError("model", "an SDXL UNet needs a text encoder with a projection (CLIPTextModelWithProjection) for its pooled text")
            }
        }
    }

    /// What to render.
    public struct Settings: Sendable {
        /// Image width in pixels (a multiple of the latent grid the UNet accepts).
        public var width = 512
        /// Image height in pixels.
        public var height = 512
        /// Sampler steps.
        public var steps = 20
        /// Classifier-free guidance scale (1 or less: no guidance, the conditional prediction alone, as diffusers).
        public var guidance: Float = 7.5
        /// The sampler.
        public var sampler = SamplerName.eulerAncestral
        /// Seed of the first image; image i uses seed + i, as the web UIs do.
        public var seed: UInt64 = 0
        /// Images rendered together.
        public var batch = 1
        /// DDIM's η.
        public var eta: Float = 0
        /// Which generator the seeds drive.
        public var noise = NoiseSource.cpu
        /// Variation seed of the first image; image i uses subseed + i (`VariationNoise`).
        public var subseed: UInt64 = 0
        /// How far the starting noise is slerped toward the variation seed's, in [0, 1]; 0: not at all.
        public var subseedStrength: Float = 0
        /// Seed resize from: the seed's noise is drawn at this pixel size and pasted centred (`VariationNoise`); nil: none.
        public var seedResizeFrom: PixelSize?
        /// Token merging (ToMe for SD, `TokenMerge`): the share of the full-resolution self-attention tokens merged,
        /// in [0, 0.75]; 0: none (the full computation).
        public var tokenMergingRatio: Double = 0
        /// DeepCache (`FeatureCache`): every this many steps the whole UNet runs, the steps between reuse its deep
        /// features; 1: every step runs the whole UNet (the full computation).
        public var deepCacheInterval = 1
        /// DeepCache's cache branch (`cache_branch_id`): block `branch / 3`, layer `branch % 3` from the UNet's top.
        public var deepCacheBranch = 0
        /// SDXL refiner: the aesthetic score the prompt is conditioned on (diffusers' default).
        public var aestheticScore: Float = 6
        /// SDXL refiner: the aesthetic score of the negative prompt.
        public var negativeAestheticScore: Float = 2.5

        /// Default settings (SD 1.5's usual ones).
        public init() {}
    }

    /// Pixels per latent cell, from the VAE's own levels.
    public var latentScale: Int { vae.downscaleFactor }

    /// The size the model was trained at and renders by default: the UNet's sample size times the VAE's
    /// scale, as diffusers' pipelines default (512 × 512 for SD 1.x, 64 × 64 for the demo model).
    public var nativeSize: (width: Int, height: Int) {
        let side = unet.config.sampleSize * latentScale
        return (side, side)
    }

    /// Checks that the UNet can take this size; throws a message naming the field.
    public func validate(_ settings: Settings) throws {
        let multiple = latentScale * (1 << (unet.config.blockOutChannels.count - 1))
        for (name, value) in [("width", settings.width), ("height", settings.height)] where value <= 0 || value % multiple != 0 {
            throw SamplingError("\(name) must be a positive multiple of \(multiple) for this model, got \(value)")
        }
        guard settings.steps >= 1 else { throw SamplingError("steps must be at least 1, got \(settings.steps)") }
        guard settings.guidance.isFinite else { throw SamplingError("guidance must be a finite number") }
        guard settings.batch >= 1 && settings.batch <= 64 else { throw SamplingError("batch must be 1...64, got \(settings.batch)") }
        guard settings.tokenMergingRatio >= 0 && settings.tokenMergingRatio <= 0.75 else {
            throw SamplingError("token merging ratio must be 0...0.75 (3 of every 4 tokens at most), got \(settings.tokenMergingRatio)")
        }
        guard settings.deepCacheInterval >= 1 else { throw SamplingError("DeepCache interval must be at least 1, got \(settings.deepCacheInterval)") }
        let branches = 3 * unet.config.blockOutChannels.count
        guard settings.deepCacheBranch >= 0 && settings.deepCacheBranch < branches else {
            throw SamplingError("DeepCache branch must be 0...\(branches - 1) for this UNet, got \(settings.deepCacheBranch)")
        }
    }

    /// One ControlNet with its control image [1, 3, H, W] in [0, 1] and conditioning scale.
    public struct Control {
        /// The ControlNet.
        public var net: ControlNet
        /// The control image at the render size, values in [0, 1].
        public var image: Tensor
        /// Multiplies its residuals.
        public var scale: Float

        /// Makes a control.
        public init(net: ControlNet, image: Tensor, scale: Float) {
            self.net = net
            self.image = image
            self.scale = scale
        }
    }
}
