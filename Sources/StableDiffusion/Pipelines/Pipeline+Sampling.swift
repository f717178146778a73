import Tensors

/// The one sampling loop of every mode: text-to-image starts from noise, img2img (`Pipeline+Img2Img.swift`) from
/// the noised image, inpainting (`Pipeline+Inpainting.swift`) adds its mask to each UNet input and keeps the
/// unmasked area after each step.
extension Pipeline {
    /// Runs the sampler from seeded noise and returns the final latents [batch, C, H/s, W/s]
    /// (unscaled by the VAE factor: what diffusers returns with `output_type="latent"`).
    /// `conditional`/`unconditional` are [1, tokens, width] text encodings.
    /// `progress(step, total)` returns false to cancel (a `CancellationError` is thrown).
    ///
    /// img2img: `image` [1, 3, H, W] in [-1, 1] (the render size) is encoded, noised to the
    /// level `strength` of the way up the schedule, and denoised from there (diffusers'
    /// StableDiffusionImg2ImgPipeline: the VAE posterior noise, then the forward noise, are
    /// drawn from each image's generator).
    ///
    /// `mask` [1, 1, H, W] (1 = repaint) turns `image` into an inpainting source, as
    /// diffusers' StableDiffusionInpaintPipeline: a 9-channel UNet also sees the mask and
    /// the masked image's latents; an ordinary UNet has the kept area replaced by the
    /// source latents, noised to the current level, after every step.
    ///
    /// `controls`: ControlNets whose residuals are summed into every UNet call
    /// (diffusers' StableDiffusionControlNetPipeline / MultiControlNetModel).
    ///
    /// `handOff`: the SDXL refiner hand-off (diffusers' `denoising_end` / `denoising_start`): the base runs the
    /// schedule's first part and returns its latents; the refiner continues from them.
    ///
    /// `schedule`: prompt editing and `AND` (`encodeSchedule`): each step takes its stretch's conditioning instead
    /// of `conditional`/`unconditional`, each stretch's UNet inputs built once.
    ///
    /// `initLatents`: img2img from these clean latents instead of an encoded image (hires fix's second pass).
    /// `initResize`: an `image` of another size than the render is encoded at its size and its latents resized so.
    public func sample(
        conditional: TextConditioning, unconditional: TextConditioning, settings: Settings, image: Tensor? = nil,
        strength: Double = 1, mask: Tensor? = nil, controls: [Control] = [], handOff: HandOff? = nil,
        schedule: ConditioningSchedule? = nil, initLatents: Tensor? = nil, initResize: LatentUpscaleMode? = nil,
        onStep: ((Int, Tensor) -> Void)? = nil, progress: (Int, Int) -> Bool = { _, _ in true }
    ) throws -> Tensor {
        if mask == nil && unet.config.inChannels == 9 {
            throw SamplingError("this is an inpainting model (9 input channels): give it an image and a mask")
        }
        for control in controls where control.image.shape != [1, 3, settings.height, settings.width] {
            throw SamplingError("control image is \(Self.sizeText(control.image)) but the render is \(settings.width)x\(settings.height)")
        }
        try validate(settings)
        var scheduler = try settings.sampler.make(config: schedulerConfig, steps: settings.steps, eta: settings.eta)
        let channels = unet.config.inChannels == 9 ? 4 : unet.config.inChannels
        let noise = BatchNoise(
            settings: settings, shape: [channels, settings.height / latentScale, settings.width / latentScale], latentScale: latentScale)
        var latents: Tensor
        var start = 0
        var end = scheduler.timesteps.count
        var inpainting: Inpainting?
        if case .continueFrom(let handed, let fraction) = handOff {
            guard image == nil, mask == nil else { throw SamplingError("the refiner continues from latents, not from an image or a mask") }
            guard handed.shape == [settings.batch] + noise.shape else {
                throw SamplingError("the handed-over latents are \(handed.shape), the refiner renders \([settings.batch] + noise.shape)")
            }
            (latents, start) = (handed, try HandOff.firstStep(continuingAt: fraction, scheduler: scheduler, config: schedulerConfig))
        } else if let mask {
            guard let image else { throw SamplingError("a mask needs an image to inpaint") }
            let prepared = try Inpainting(
                self, image: image, mask: mask, strength: strength, settings: settings, scheduler: scheduler, noise: noise)
            (latents, start, inpainting) = (prepared.latents, prepared.start, prepared)
        } else if image != nil || initLatents != nil {
            (latents, start) = try img2imgStart(
                image, latents: initLatents, resize: initResize, strength: strength, settings: settings, scheduler: scheduler, noise: noise)
        } else {
            latents = noise.next().scaled(by: scheduler.initNoiseSigma)
        }
        if case .stopAt(let fraction) = handOff { end = try HandOff.stepCount(stoppingAt: fraction, scheduler: scheduler, config: schedulerConfig) }
        var inputs: [Int: (context: Tensor, added: AddedConditioning?)] = [:]
        if schedule == nil {
            inputs[0] = (
                textContext(conditional: conditional.context, unconditional: unconditional.context, settings: settings),
                try addedConditioning(conditional: conditional, unconditional: unconditional, settings: settings)
            )
        }
        var shortcuts = UNetShortcuts(mergeRatio: settings.tokenMergingRatio)
        if settings.deepCacheInterval > 1 { shortcuts.cache = FeatureCache(interval: settings.deepCacheInterval, branch: settings.deepCacheBranch) }
        for (index, timestep) in scheduler.timesteps.enumerated() where index >= start && index < end {
            shortcuts.cache?.begin(step: index - start)
            var input = scheduler.scaleModelInput(latents, index: index)
            if let inpainting { input = inpainting.modelInput(input) }
            var key = 0
            var weights: [Float] = [1]
            if let schedule {
                let (positive, negative) = (
                    ConditioningSchedule.index(schedule.conditional, at: index), ConditioningSchedule.index(schedule.unconditional, at: index)
                )
                key = positive * schedule.unconditional.count + negative
                weights = schedule.conditional[positive].parts.map(\.weight)
                if inputs[key] == nil {
                    inputs[key] = try scheduledInputs(schedule.conditional[positive], schedule.unconditional[negative], settings: settings)
                }
            }
            let (context, added) = inputs[key]!
            let output =
                weights == [1]
                ? guidedPrediction(
                    input, timestep: timestep, context: context, added: added, settings: settings, controls: controls, shortcuts: shortcuts)
                : composedPrediction(
                    input, timestep: timestep, context: context, added: added, weights: weights, settings: settings, shortcuts: shortcuts)
            latents = scheduler.step(output, index: index, sample: latents, noise: noise.next)
            if let inpainting { latents = inpainting.keepingSource(latents, after: index, scheduler: scheduler) }
            onStep?(index + 1 - start, latents)
            guard progress(index + 1 - start, end - start) else { throw CancellationError() }
        }
        return latents
    }

    /// `sample` with bare text encodings (SD 1.x/2.x, whose UNets take no pooled text).
    public func sample(
        conditional: Tensor, unconditional: Tensor, settings: Settings, image: Tensor? = nil, strength: Double = 1,
        mask: Tensor? = nil, controls: [Control] = [], onStep: ((Int, Tensor) -> Void)? = nil,
        progress: (Int, Int) -> Bool = { _, _ in true }
    ) throws -> Tensor {
        try sample(
            conditional: TextConditioning(context: conditional), unconditional: TextConditioning(context: unconditional),
            settings: settings, image: image, strength: strength, mask: mask, controls: controls, onStep: onStep, progress: progress)
    }

    /// `W`x`H` of an [N, C, H, W] tensor, for messages.
    static func sizeText(_ tensor: Tensor) -> String {
        tensor.shape.dropFirst(2).reversed().map(String.init).joined(separator: "x")
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
    func guidedPrediction(
        _ input: Tensor, timestep: Float, context: Tensor, added: AddedConditioning?, settings: Settings, controls: [Control],
        shortcuts: UNetShortcuts = UNetShortcuts()
    ) -> Tensor {
        let guided = settings.guidance > 1
        let batchInput = guided ? Tensor.concat([input, input], axis: 0) : input
        var residuals: ControlResiduals?
        for control in controls {
            let images = Tensor.concat(Array(repeating: control.image, count: batchInput.shape[0]), axis: 0)
            let latents = batchInput.shape[1] == 4 ? batchInput : batchInput.slice(axis: 1, range: 0..<4)
            var net = control.net
            net.device = unet.device  // ControlNets run where the UNet does
            let next = net(latents, timestep: timestep, context: context, added: added, control: images, scale: control.scale)
            residuals = residuals.map { $0 + next } ?? next
        }
        let prediction = unet.predict(batchInput, timestep: timestep, context: context, added: added, control: residuals, shortcuts: shortcuts)
        guard guided else { return prediction }
        let halves = prediction.chunked(2, axis: 0)
        let scale = settings.guidance
        return Tensor.broadcast(halves[0], halves[1]) { $0 + scale * ($1 - $0) }
    }
}
