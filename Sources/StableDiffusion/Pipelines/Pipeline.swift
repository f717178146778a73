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
    /// The text encoder.
    public let textEncoder: TextEncoder
    /// The denoiser.
    public let unet: UNet
    /// The autoencoder.
    public let vae: VAE
    /// Noise schedule and prediction type.
    public let schedulerConfig: SchedulerConfig
    /// How prompts are padded to 77 tokens (the model's tokenizer config).
    public let padding: PaddingStyle

    /// Builds every network of a loaded model.
    public init(weights: ModelWeights) throws {
        textEncoder = try TextEncoder(config: weights.textEncoderConfig, weights: weights.textEncoder)
        unet = try UNet(config: weights.unetConfig, weights: weights.unet)
        vae = try VAE(config: weights.vaeConfig, weights: weights.vae)
        schedulerConfig = weights.schedulerConfig
        padding = weights.padTokenID == 0 ? .exclamationMark : .endOfText
    }

    /// Encodes a prompt and a negative prompt with the web UIs' syntax (weights, BREAK,
    /// 75-token chunks); the shorter side is padded with empty chunks so both have the
    /// same length. Returns [1, 77·chunks, width] conditional and unconditional encodings.
    public func encodePrompts(
        _ prompt: String, negative: String, clipSkip: Int = 1,
        tokenizer: CLIPTokenizer? = nil
    ) throws -> (conditional: Tensor, unconditional: Tensor) {
        let chunker = PromptChunker(tokenizer: try tokenizer ?? CLIPTokenizer.shared(), padding: padding)
        var positive = try chunker.chunks(for: prompt)
        var negativeChunks = try chunker.chunks(for: negative)
        let empty = try chunker.chunks(for: "")
        while positive.tokens.count < negativeChunks.tokens.count {
            positive.tokens += empty.tokens
            positive.weights += empty.weights
        }
        while negativeChunks.tokens.count < positive.tokens.count {
            negativeChunks.tokens += empty.tokens
            negativeChunks.weights += empty.weights
        }
        let vocabulary = textEncoder.config.vocabSize
        if let id = (positive.tokens + negativeChunks.tokens).joined().first(where: { $0 >= vocabulary }) {
            throw SamplingError("token id \(id) is outside this text encoder's \(vocabulary)-token vocabulary; the model is not a CLIP text encoder")
        }
        return (
            textEncoder.encode(chunks: positive.tokens, weights: positive.weights, clipSkip: clipSkip),
            textEncoder.encode(chunks: negativeChunks.tokens, weights: negativeChunks.weights, clipSkip: clipSkip)
        )
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
    }

    /// Runs the sampler from seeded noise and returns the final latents [batch, C, H/s, W/s]
    /// (unscaled by the VAE factor: what diffusers returns with `output_type="latent"`).
    /// `conditional`/`unconditional` are [1, tokens, width] text encodings.
    /// `progress(step, total)` returns false to cancel (a `CancellationError` is thrown).
    /// img2img: `image` [1, 3, H, W] in [-1, 1] (the render size) is encoded, noised to the
    /// level `strength` of the way up the schedule, and denoised from there (diffusers'
    /// StableDiffusionImg2ImgPipeline: the VAE posterior noise, then the forward noise, are
    /// drawn from each image's generator).
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

    /// `controls`: ControlNets whose residuals are summed into every UNet call
    /// (diffusers' StableDiffusionControlNetPipeline / MultiControlNetModel).
    ///
    /// `mask` [1, 1, H, W] (1 = repaint) turns `image` into an inpainting source, as
    /// diffusers' StableDiffusionInpaintPipeline: a 9-channel UNet also sees the mask and
    /// the masked image's latents; an ordinary UNet has the kept area replaced by the
    /// source latents, noised to the current level, after every step.
    public func sample(
        conditional: Tensor, unconditional: Tensor, settings: Settings, image: Tensor? = nil, strength: Double = 1,
        mask: Tensor? = nil, controls: [Control] = [], onStep: ((Int, Tensor) -> Void)? = nil,
        progress: (Int, Int) -> Bool = { _, _ in true }
    ) throws -> Tensor {
        if let mask {
            guard let image else { throw SamplingError("a mask needs an image to inpaint") }
            return try inpaint(
                conditional: conditional, unconditional: unconditional, settings: settings, image: image,
                mask: mask, strength: strength, controls: controls, onStep: onStep, progress: progress)
        }
        guard unet.config.inChannels != 9 else {
            throw SamplingError("this is an inpainting model (9 input channels): give it an image and a mask")
        }
        for control in controls where control.image.shape != [1, 3, settings.height, settings.width] {
            throw SamplingError(
                "control image is \(control.image.shape.dropFirst(2).reversed().map(String.init).joined(separator: "x")) but the render is \(settings.width)x\(settings.height)"
            )
        }
        try validate(settings)
        var scheduler = try settings.sampler.make(config: schedulerConfig, steps: settings.steps, eta: settings.eta)
        let channels = unet.config.inChannels == 9 ? 4 : unet.config.inChannels
        let shape = [channels, settings.height / latentScale, settings.width / latentScale]
        let perImage = shape.reduce(1, *)
        var generators = (0..<settings.batch).map { settings.noise.generator(seed: settings.seed &+ UInt64($0)) }
        func noise() -> Tensor {
            let values = generators.indices.flatMap { generators[$0].randn(perImage) }
            return Tensor(shape: [settings.batch] + shape, values: values)
        }
        var latents: Tensor
        var start = 0
        if let image {
            guard strength > 0 && strength <= 1 else { throw SamplingError("strength must be in (0, 1], got \(strength)") }
            guard image.shape == [1, 3, settings.height, settings.width] else {
                throw SamplingError(
                    "init image is \(image.shape.dropFirst(2).reversed().map(String.init).joined(separator: "x")) but the render is \(settings.width)x\(settings.height)"
                )
            }
            let clean = encodeSampled(image, generators: &generators)
            start = Self.firstStep(steps: settings.steps, strength: strength) * scheduler.order
            guard start < scheduler.timesteps.count else {
                throw SamplingError("strength \(strength) leaves no steps to run; raise it or the step count")
            }
            latents = scheduler.addNoise(clean, noise: noise(), index: start)
        } else {
            latents = noise().scaled(by: scheduler.initNoiseSigma)
        }
        let context = textContext(conditional: conditional, unconditional: unconditional, settings: settings)
        for (index, timestep) in scheduler.timesteps.enumerated() where index >= start {
            let output = guidedPrediction(
                scheduler.scaleModelInput(latents, index: index), timestep: timestep,
                context: context, settings: settings, controls: controls)
            latents = scheduler.step(output, index: index, sample: latents, noise: noise)
            onStep?(index + 1 - start, latents)
            guard progress(index + 1 - start, scheduler.timesteps.count - start) else { throw CancellationError() }
        }
        return latents
    }

    /// Decodes latents to RGB images, 8 bits per sample, rows top to bottom (as diffusers'
    /// `numpy_to_pil`: (x/2 + 0.5) clamped to [0, 1], × 255, rounded half to even).
    /// `tiled` decodes in tiles of the VAE's sample size (memory bounded by the tile, not the
    /// image) with those group-norm statistics; nil decodes the whole image at once.
    public func decode(_ latents: Tensor, tiled: TileStatistics? = nil) -> [[UInt8]] {
        // The pool holds the sampler's large buffers, whose sizes the VAE never asks for: return
        // them before the decoder makes its full-resolution tensors, and keep the decoder's out of
        // it (the next image samples first). Buffers under a megabyte stay for other threads' loops.
        BufferPool.drain(atLeast: 1 << 20)
        return BufferPool.unpooled {
            let scaled = latents.scaled(by: 1 / Float(vae.config.scalingFactor))
            let tile = max(1, vae.config.sampleSize / vae.downscaleFactor)
            let pixels = tiled.map { vae.decodeTiled(scaled, tile: tile, statistics: $0) } ?? vae.decode(scaled)
            return Pipeline.bytes(pixels)
        }
    }

    /// A cheap preview of the first image in `latents`, at latent resolution: SD's 4 latent
    /// channels projected linearly to RGB (the factors the web UIs use for live previews),
    /// instead of a VAE decode. Returns (width, height, interleaved RGB bytes).
    public static func preview(_ latents: Tensor) -> (width: Int, height: Int, rgb: [UInt8]) {
        let (channels, height, width) = (latents.shape[1], latents.shape[2], latents.shape[3])
        let factors: [[Float]] = [
            [0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
            [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177],
        ]
        let plane = height * width
        var rgb = [UInt8](repeating: 0, count: plane * 3)
        latents.withUnsafeBufferPointer { values in
            for p in 0..<plane {
                for c in 0..<3 {
                    var sum: Float = 0
                    for k in 0..<min(channels, 4) { sum += values[k * plane + p] * factors[k][c] }
                    rgb[p * 3 + c] = UInt8(Swift.min(Swift.max((sum + 1) / 2, 0), 1) * 255)
                }
            }
        }
        return (width, height, rgb)
    }

    /// Interleaved 8-bit RGB (rows top to bottom) → [1, 3, H, W] in [-1, 1], as diffusers' image processor.
    public static func pixels(rgb bytes: [UInt8], width: Int, height: Int) -> Tensor {
        precondition(bytes.count == width * height * 3, "expected \(width * height * 3) RGB bytes")
        var values = [Float](repeating: 0, count: bytes.count)
        for p in 0..<(width * height) {
            for c in 0..<3 { values[c * width * height + p] = Float(bytes[p * 3 + c]) / 255 * 2 - 1 }
        }
        return Tensor(shape: [1, 3, height, width], values: values)
    }

    /// [N, 3, H, W] pixels in [-1, 1] → N interleaved RGB byte arrays.
    public static func bytes(_ pixels: Tensor) -> [[UInt8]] {
        let (batch, channels, height, width) = (pixels.shape[0], pixels.shape[1], pixels.shape[2], pixels.shape[3])
        let values = pixels.scalars
        return (0..<batch).map { n in
            var bytes = [UInt8](repeating: 0, count: height * width * channels)
            for c in 0..<channels {
                for p in 0..<(height * width) {
                    let x = Swift.min(Swift.max(values[(n * channels + c) * height * width + p] / 2 + 0.5, 0), 1)
                    bytes[p * channels + c] = UInt8((x * 255).rounded(.toNearestOrEven))
                }
            }
            return bytes
        }
    }

    /// Encodes pixels [1, 3, H, W] once per image of the batch, each with a posterior
    /// sample from that image's generator, scaled for the UNet.
    func encodeSampled(_ pixels: Tensor, generators: inout [any NoiseGenerator]) -> Tensor {
        let posterior = vae.encode(pixels)
        let count = posterior.mean.count
        let encoded = generators.indices.map { index in
            vae.sample(
                mean: posterior.mean, logVariance: posterior.logVariance,
                noise: Tensor(shape: posterior.mean.shape, values: generators[index].randn(count)))
        }
        return Tensor.concat(encoded, axis: 0).scaled(by: Float(vae.config.scalingFactor))
    }

    /// The first step img2img and inpainting run for `strength`: diffusers' `get_timesteps`, whose
    /// `int(steps * strength)` is computed in double precision (in Float, 50 × 0.58 would keep 29 steps, not 28).
    public static func firstStep(steps: Int, strength: Double) -> Int {
        let kept = min(Int(Double(steps) * strength), steps)
        return max(steps - kept, 0)
    }

    /// Encodes pixels [1, 3, H, W] once, with a posterior sample from the first image's generator, and repeats the
    /// latents over the batch, as diffusers' inpainting pipeline does (`_encode_vae_image` on one image).
    func encodeShared(_ pixels: Tensor, generators: inout [any NoiseGenerator]) -> Tensor {
        var first = [generators[0]]
        let encoded = encodeSampled(pixels, generators: &first)
        generators[0] = first[0]
        return Tensor.concat(Array(repeating: encoded, count: generators.count), axis: 0)
    }

    func inpaint(
        conditional: Tensor, unconditional: Tensor, settings: Settings, image: Tensor, mask: Tensor, strength: Double,
        controls: [Control], onStep: ((Int, Tensor) -> Void)?, progress: (Int, Int) -> Bool
    ) throws -> Tensor {
        try validate(settings)
        guard image.shape == [1, 3, settings.height, settings.width] else {
            throw SamplingError(
                "init image is \(image.shape.dropFirst(2).reversed().map(String.init).joined(separator: "x")) but the render is \(settings.width)x\(settings.height)"
            )
        }
        guard mask.shape == [1, 1, settings.height, settings.width] else {
            throw SamplingError(
                "mask is \(mask.shape.dropFirst(2).reversed().map(String.init).joined(separator: "x")) but the image is \(settings.width)x\(settings.height)"
            )
        }
        guard strength > 0 && strength <= 1 else { throw SamplingError("strength must be in (0, 1], got \(strength)") }
        var scheduler = try settings.sampler.make(config: schedulerConfig, steps: settings.steps, eta: settings.eta)
        let nineChannels = unet.config.inChannels == 9
        let (height, width) = (settings.height / latentScale, settings.width / latentScale)
        let perImage = 4 * height * width
        var generators = (0..<settings.batch).map { settings.noise.generator(seed: settings.seed &+ UInt64($0)) }
        let start = Self.firstStep(steps: settings.steps, strength: strength) * scheduler.order
        guard start < scheduler.timesteps.count else { throw SamplingError("strength \(strength) leaves no steps to run") }
        let fullStrength = strength == 1

        let binary = mask.map { $0 >= 0.5 ? 1 : 0 }
        // diffusers encodes the (single) source and masked image with the first image's generator only and
        // repeats the latents over the batch; the other generators give only noise.
        let source = (!nineChannels || !fullStrength) ? encodeShared(image, generators: &generators) : nil
        let noiseValues = generators.indices.flatMap { generators[$0].randn(perImage) }
        let initialNoise = Tensor(shape: [settings.batch, 4, height, width], values: noiseValues)
        var latents =
            fullStrength
            ? initialNoise.scaled(by: scheduler.initNoiseSigma)
            : scheduler.addNoise(source!, noise: initialNoise, index: start)
        let maskedImage = image * binary.map { 1 - $0 }
        let maskedLatents = encodeShared(maskedImage, generators: &generators)
        // Nearest-neighbour down to the latent grid, as torch's interpolate does.
        let small = binary.reshaped([settings.height, settings.width])
        let latentMask = Tensor(
            shape: [1, 1, height, width],
            values: (0..<(height * width)).map { index in
                small[(index / width) * settings.height / height, (index % width) * settings.width / width]
            })
        let maskBatch = Tensor.concat(Array(repeating: latentMask, count: settings.batch), axis: 0)

        let context = textContext(conditional: conditional, unconditional: unconditional, settings: settings)
        for (index, timestep) in scheduler.timesteps.enumerated() where index >= start {
            var input = scheduler.scaleModelInput(latents, index: index)
            if nineChannels { input = Tensor.concat([input, maskBatch, maskedLatents], axis: 1) }
            let output = guidedPrediction(input, timestep: timestep, context: context, settings: settings, controls: controls)
            latents = scheduler.step(
                output, index: index, sample: latents,
                noise: {
                    Tensor(
                        shape: [settings.batch, 4, height, width],
                        values: generators.indices.flatMap { generators[$0].randn(perImage) })
                })
            if !nineChannels, let source {
                let proper = index + 1 < scheduler.timesteps.count ? scheduler.addNoise(source, noise: initialNoise, index: index + 1) : source
                let blended = Tensor.broadcast(proper, maskBatch) { $0 * (1 - $1) }
                latents = blended + latents * maskBatch
            }
            onStep?(index + 1 - start, latents)
            guard progress(index + 1 - start, scheduler.timesteps.count - start) else { throw CancellationError() }
        }
        return latents
    }

    /// The text context of one UNet call: unconditional rows, then conditional rows, one per image
    /// (conditional only when guidance is off, at a scale of 1 or less).
    func textContext(conditional: Tensor, unconditional: Tensor, settings: Settings) -> Tensor {
        let rows = Array(repeating: conditional, count: settings.batch)
        guard settings.guidance > 1 else { return Tensor.concat(rows, axis: 0) }
        return Tensor.concat(Array(repeating: unconditional, count: settings.batch) + rows, axis: 0)
    }

    /// One guided prediction: the unconditional and conditional passes batched into one UNet
    /// call (with any ControlNet residuals, the ControlNets seeing the 4 latent channels),
    /// combined as uncond + guidance·(cond − uncond).
    func guidedPrediction(_ input: Tensor, timestep: Float, context: Tensor, settings: Settings, controls: [Control]) -> Tensor {
        let guided = settings.guidance > 1
        let batchInput = guided ? Tensor.concat([input, input], axis: 0) : input
        var residuals: ControlResiduals?
        for control in controls {
            let images = Tensor.concat(Array(repeating: control.image, count: batchInput.shape[0]), axis: 0)
            let latents = batchInput.shape[1] == 4 ? batchInput : batchInput.slice(axis: 1, range: 0..<4)
            let next = control.net(latents, timestep: timestep, context: context, control: images, scale: control.scale)
            residuals = residuals.map { $0 + next } ?? next
        }
        let prediction = unet(batchInput, timestep: timestep, context: context, control: residuals)
        guard guided else { return prediction }
        let halves = prediction.chunked(2, axis: 0)
        let scale = settings.guidance
        return Tensor.broadcast(halves[0], halves[1]) { $0 + scale * ($1 - $0) }
    }
}
