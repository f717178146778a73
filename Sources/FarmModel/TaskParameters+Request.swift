import Generation

extension GenerationRequest {
    /// The request a task asks for: its inputs are the stored images' SHA-256s, its noise the CPU generator's.
    /// An `outpaint` list that is not four numbers is dropped (`TaskParameters.validate` refuses it).
    public init(_ task: TaskParameters) {
        self.init(prompt: task.prompt, model: task.model)
        negativePrompt = task.negativePrompt
        (width, height) = (task.width, task.height)
        steps = task.steps
        cfgScale = task.cfgScale
        sampler = task.sampler
        seed = task.seed
        clipSkip = task.clipSkip
        initImage = task.initImage
        mask = task.mask
        strength = task.strength
        maskBlur = task.maskBlur
        outpaint = task.outpaint.flatMap(Outpaint.init)
        controlnets = (task.controlnets ?? []).map { Control(model: $0.model, image: $0.image, scale: $0.scale) }
        refiner = task.refiner
        refinerSwitch = task.refinerSwitch
        vae = task.vae
        loras = (task.loras ?? []).map { LoRA(name: $0.name, weight: $0.weight) }
        (tokenMergingRatio, deepCacheInterval, deepCacheBranch) = (task.tokenMergingRatio, task.deepCacheInterval, task.deepCacheBranch)
        subseed = task.subseed
        subseedStrength = task.subseedStrength
        seedResizeFrom = task.seedResizeFrom.flatMap { $0.count == 2 ? PixelSize(width: $0[0], height: $0[1]) : nil }
        resizeMode = task.resizeMode.flatMap(ResizeMode.init(rawValue:))
        if task.asksForHires {
            var pass = Hires(scale: task.hiresScale, width: task.hiresWidth, height: task.hiresHeight)
            (pass.upscaler, pass.steps, pass.denoise) = (task.hiresUpscaler, task.hiresSteps, task.hiresDenoise)
            (pass.prompt, pass.negativePrompt, pass.sampler) = (task.hiresPrompt, task.hiresNegativePrompt, task.hiresSampler)
            hires = pass
        }
    }
}

extension TaskParameters {
    /// The task that renders `request` on the farm; its input references must be stored images' SHA-256s.
    /// The farm's workers draw noise with the CPU generator: a request's `rng` does not travel.
    public init(_ request: GenerationRequest) {
        self.init(
            prompt: request.prompt, negativePrompt: request.negativePrompt, model: request.model, width: request.width,
            height: request.height, steps: request.steps, cfgScale: request.cfgScale, sampler: request.sampler, seed: request.seed)
        clipSkip = request.clipSkip
        initImage = request.initImage
        mask = request.mask
        strength = request.strength
        maskBlur = request.maskBlur
        outpaint = request.outpaint?.values
        controlnets = request.controlnets.isEmpty ? nil : request.controlnets.map { Control(model: $0.model, image: $0.image, scale: $0.scale) }
        refiner = request.refiner
        refinerSwitch = request.refinerSwitch
        vae = request.vae
        loras = request.loras.isEmpty ? nil : request.loras.map { LoRA(name: $0.name, weight: $0.weight) }
        (tokenMergingRatio, deepCacheInterval, deepCacheBranch) = (request.tokenMergingRatio, request.deepCacheInterval, request.deepCacheBranch)
        subseed = request.subseed
        subseedStrength = request.subseedStrength
        seedResizeFrom = request.seedResizeFrom.map { [$0.width, $0.height] }
        resizeMode = request.resizeMode?.rawValue
        if let hires = request.hires {
            (hiresScale, hiresWidth, hiresHeight, hiresUpscaler) = (hires.scale, hires.width, hires.height, hires.upscaler)
            (hiresSteps, hiresDenoise, hiresPrompt) = (hires.steps, hires.denoise, hires.prompt)
            (hiresNegativePrompt, hiresSampler) = (hires.negativePrompt, hires.sampler)
        }
    }

    /// Whether any hires field is set (hires fix is then asked for; `validate` says what is missing).
    var asksForHires: Bool {
        [hiresScale, hiresDenoise].contains { $0 != nil } || [hiresWidth, hiresHeight, hiresSteps].contains { $0 != nil }
            || [hiresUpscaler, hiresPrompt, hiresNegativePrompt, hiresSampler].contains { $0 != nil }
    }

    /// The web UI's `parameters` text of this task's image of `width` × `height` (`GenerationRequest`'s one writer).
    public func parametersText(width: Int, height: Int, hashes: AddOnHashes = AddOnHashes()) -> String {
        GenerationRequest(self).parametersText(width: width, height: height, hashes: hashes)
    }
}
