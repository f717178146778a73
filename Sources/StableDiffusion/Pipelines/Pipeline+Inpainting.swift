import Tensors

/// Inpainting, as diffusers' StableDiffusionInpaintPipeline: a 9-channel UNet also sees the mask and the masked
/// image's latents; an ordinary UNet has the kept area replaced by the source latents, noised to the current
/// level, after every step.
struct Inpainting {
    /// The latents the loop starts from.
    let latents: Tensor
    /// The first step the loop runs.
    let start: Int
    /// The mask at latent resolution, repeated over the batch (1 = repaint).
    let maskBatch: Tensor
    /// The masked image's latents, which a 9-channel UNet sees.
    let maskedLatents: Tensor
    /// The source's latents, pasted back over the kept area (ordinary UNets); nil for a 9-channel UNet at strength 1.
    let source: Tensor?
    /// The noise the source is noised with at each level.
    let initialNoise: Tensor
    /// Whether the UNet takes the mask and masked image as extra input channels.
    let nineChannels: Bool

    /// Encodes the source and masked image and draws the starting noise, in diffusers' order: the (single) source
    /// and masked image are encoded with the first image's generator only and repeated over the batch; the other
    /// generators give only noise.
    init(
        _ pipeline: Pipeline, image: Tensor, mask: Tensor, strength: Double, settings: Pipeline.Settings, scheduler: any Scheduler,
        noise: BatchNoise
    ) throws {
        guard image.shape == [1, 3, settings.height, settings.width] else {
            throw SamplingError("init image is \(Pipeline.sizeText(image)) but the render is \(settings.width)x\(settings.height)")
        }
        guard mask.shape == [1, 1, settings.height, settings.width] else {
            throw SamplingError("mask is \(Pipeline.sizeText(mask)) but the image is \(settings.width)x\(settings.height)")
        }
        guard strength > 0 && strength <= 1 else { throw SamplingError("strength must be in (0, 1], got \(strength)") }
        nineChannels = pipeline.unet.config.inChannels == 9
        start = Pipeline.firstStep(steps: settings.steps, strength: strength) * scheduler.order
        guard start < scheduler.timesteps.count else { throw SamplingError("strength \(strength) leaves no steps to run") }
        let fullStrength = strength == 1
        let binary = mask.map { $0 >= 0.5 ? 1 : 0 }
        source = (!nineChannels || !fullStrength) ? pipeline.encodeShared(image, generators: &noise.generators) : nil
        initialNoise = noise.next()
        latents = fullStrength ? initialNoise.scaled(by: scheduler.initNoiseSigma) : scheduler.addNoise(source!, noise: initialNoise, index: start)
        maskedLatents = pipeline.encodeShared(image * binary.map { 1 - $0 }, generators: &noise.generators)
        // Nearest-neighbour down to the latent grid, as torch's interpolate does.
        let (height, width) = (settings.height / pipeline.latentScale, settings.width / pipeline.latentScale)
        let small = binary.reshaped([settings.height, settings.width])
        let latentMask = Tensor(
            shape: [1, 1, height, width],
            values: (0..<(height * width)).map { index in
                small[(index / width) * settings.height / height, (index % width) * settings.width / width]
            })
        maskBatch = Tensor.concat(Array(repeating: latentMask, count: settings.batch), axis: 0)
    }

    /// The UNet's input: for a 9-channel UNet, the latents, the mask and the masked image's latents.
    func modelInput(_ scaled: Tensor) -> Tensor {
        nineChannels ? Tensor.concat([scaled, maskBatch, maskedLatents], axis: 1) : scaled
    }

    /// For an ordinary UNet, the latents after step `index` with the kept area replaced by the source noised to
    /// the next level (the clean source after the last step).
    func keepingSource(_ latents: Tensor, after index: Int, scheduler: any Scheduler) -> Tensor {
        guard !nineChannels, let source else { return latents }
        let proper = index + 1 < scheduler.timesteps.count ? scheduler.addNoise(source, noise: initialNoise, index: index + 1) : source
        let blended = Tensor.broadcast(proper, maskBatch) { $0 * (1 - $1) }
        return blended + latents * maskBatch
    }
}
