/// The one set of limits on what a request may ask for, so that no client (the CLI, a spec, the HTTP API)
/// can ask for unbounded work or memory, and `farm render` accepts what the farm accepts.
public struct GenerationLimits: Codable, Equatable, Sendable {
    /// Longest prompt, in UTF-8 bytes.
    public var maxPromptBytes = 4096
    /// Largest image side, in pixels (sides are multiples of `sizeMultiple`).
    public var maxSide = 2048
    /// Largest image area, in pixels.
    public var maxPixels = 2048 * 2048
    /// Most denoising steps.
    public var maxSteps = 500

    /// Every side is a multiple of this (the VAE's scale; a model may ask for a coarser grid).
    public static let sizeMultiple = 8
    /// Guidance scales allowed.
    public static let cfgScales = 0.0...100
    /// Text-encoder layers from the end allowed.
    public static let clipSkips = 1...12
    /// Largest mask blur, in pixels.
    public static let maxMaskBlur = 64.0
    /// Most pixels outpainting may add on one side.
    public static let maxOutpaint = 2048
    /// Most ControlNets in one request.
    public static let maxControlNets = 4
    /// ControlNet conditioning scales allowed.
    public static let controlScales = 0.0...10
    /// Most LoRAs a request may name besides its prompt's tags.
    public static let maxLoRAs = 16
    /// LoRA weights allowed (the web UI's sliders stop well inside these).
    public static let loraWeights = -10.0...10
    /// Token merging ratios allowed: with one destination per 2×2 cell, at most 3 of every 4 tokens can merge.
    public static let tokenMergingRatios = 0.0...0.75
    /// DeepCache branches allowed (3 per UNet level, SD 1.x/2.x having 4; a UNet with fewer levels allows fewer).
    public static let deepCacheBranches = 0...11

    /// The default limits.
    public init() {}

    /// Limits with these bounds.
    public init(maxPromptBytes: Int, maxSide: Int, maxPixels: Int, maxSteps: Int) {
        self.maxPromptBytes = maxPromptBytes
        self.maxSide = maxSide
        self.maxPixels = maxPixels
        self.maxSteps = maxSteps
    }
}

/// A request outside the limits or inconsistent with itself; `field` says which input, by its name on the wire
/// (`field.key`) or on the command line (`field.flag`).
public struct InvalidGenerationRequest: Error, Equatable, CustomStringConvertible {
    /// The offending input.
    public var field: GenerationRequest.Field
    /// What is wrong and what is allowed ("must be 1...500, got 0").
    public var message: String

    /// Makes an error about `field`.
    public init(_ field: GenerationRequest.Field, _ message: String) {
        self.field = field
        self.message = message
    }

    /// The message alone (the engine's errors read "unknown sampler …").
    public var description: String { message }
    /// The error as the wire names it: `cfg_scale: must be …`.
    public var keyed: String { "\(field.key): \(message)" }
    /// The error as the command line names it: `--cfg must be …`.
    public var flagged: String { "\(field.flag) \(message)" }
}

extension GenerationRequest {
    /// An input of a request, with its name on the wire and on the command line.
    public enum Field: Equatable, Sendable {
        /// A scalar parameter.
        case prompt, negativePrompt, model, width, height, steps, cfgScale, sampler, seed, clipSkip, rng
        /// An input or an input's setting.
        case initImage, mask, strength, maskBlur, outpaint, controlnets
        /// The refiner, its hand-off point, and the VAE that replaces the model's.
        case refiner, refinerSwitch, vae
        /// The model of ControlNet `index`.
        case controlModel(Int)
        /// The control image of ControlNet `index`.
        case controlImage(Int)
        /// The scale of ControlNet `index`.
        case controlScale(Int)
        /// Variation seeds and seed resizing.
        case subseed, subseedStrength, seedResizeFrom
        /// How an init image of another size is fitted.
        case resizeMode
        /// Hires fix.
        case hiresScale, hiresWidth, hiresHeight, hiresUpscaler, hiresSteps, hiresDenoise, hiresPrompt, hiresNegativePrompt, hiresSampler
        /// The few-step shortcuts: token merging and DeepCache.
        case tokenMergingRatio, deepCacheInterval, deepCacheBranch
        /// The LoRAs named outside the prompt.
        case loras
        /// The name of LoRA `index`.
        case loraName(Int)
        /// The weight of LoRA `index`.
        case loraWeight(Int)

        /// The field's name in task parameters (JSON, specs, the HTTP API).
        public var key: String {
            switch self {
            case .prompt: return "prompt"
            case .negativePrompt: return "negative_prompt"
            case .model: return "model"
            case .width: return "width"
            case .height: return "height"
            case .steps: return "steps"
            case .cfgScale: return "cfg_scale"
            case .sampler: return "sampler"
            case .seed: return "seed"
            case .clipSkip: return "clip_skip"
            case .rng: return "rng"
            case .initImage: return "init_image"
            case .mask: return "mask"
            case .strength: return "strength"
            case .maskBlur: return "mask_blur"
            case .outpaint: return "outpaint"
            case .controlnets: return "controlnets"
            case .refiner: return "refiner"
            case .refinerSwitch: return "refiner_switch"
            case .vae: return "vae"
            case .controlModel(let index): return "controlnets[\(index)].model"
            case .controlImage(let index): return "controlnets[\(index)].image"
            case .controlScale(let index): return "controlnets[\(index)].scale"
            case .subseed: return "subseed"
            case .subseedStrength: return "subseed_strength"
            case .seedResizeFrom: return "seed_resize_from"
            case .resizeMode: return "resize_mode"
            case .hiresScale: return "hires_scale"
            case .hiresWidth: return "hires_width"
            case .hiresHeight: return "hires_height"
            case .hiresUpscaler: return "hires_upscaler"
            case .hiresSteps: return "hires_steps"
            case .hiresDenoise: return "hires_denoise"
            case .hiresPrompt: return "hires_prompt"
            case .hiresNegativePrompt: return "hires_negative_prompt"
            case .hiresSampler: return "hires_sampler"
            case .tokenMergingRatio: return "token_merging_ratio"
            case .deepCacheInterval: return "deepcache_interval"
            case .deepCacheBranch: return "deepcache_branch"
            case .loras: return "loras"
            case .loraName(let index): return "loras[\(index)].name"
            case .loraWeight(let index): return "loras[\(index)].weight"
            }
        }

        /// The field's flag in `farm render` and `farm submit`.
        public var flag: String {
            switch self {
            case .negativePrompt: return "--negative"
            case .cfgScale: return "--cfg"
            case .controlnets, .controlModel: return "--controlnet"
            case .controlImage: return "--control-image"
            case .controlScale: return "--control-scale"
            case .loras, .loraName, .loraWeight: return "--lora"
            case .hiresNegativePrompt: return "--hires-negative"
            case .tokenMergingRatio: return "--tome"
            case .deepCacheInterval: return "--deepcache"
            default: return "--" + key.replacingUnderscores
            }
        }
    }

    /// Checks every parameter against `limits` and the request against itself; the error names the field.
    /// Input references are not checked here (paths and stored-image hashes are checked where they are read),
    /// nor is the sampler's name, which the engine that runs it parses (a farm's workers may know newer ones).
    public func validate(limits: GenerationLimits = GenerationLimits()) throws {
        func fail(_ field: Field, _ why: String) -> InvalidGenerationRequest { InvalidGenerationRequest(field, why) }
        if prompt.isEmpty { throw fail(.prompt, "must not be empty") }
        // NUL ends strings in PostgreSQL and C: refused, never truncated.
        let texts = [(Field.prompt, prompt), (.negativePrompt, negativePrompt), (.model, model), (.sampler, sampler)]
        for (field, value) in texts + [(.refiner, refiner), (.vae, vae)].compactMap({ field, value in value.map { (field, $0) } })
        where value.utf8.contains(0) {
            throw fail(field, "must not contain NUL bytes")
        }
        for (field, value) in [(Field.prompt, prompt), (.negativePrompt, negativePrompt)] where value.utf8.count > limits.maxPromptBytes {
            throw fail(field, "is \(value.utf8.count) bytes; the limit is \(limits.maxPromptBytes)")
        }
        if model.isEmpty { throw fail(.model, "must name a model") }
        if refiner?.isEmpty == true { throw fail(.refiner, "must name a model (or be left out)") }
        if vae?.isEmpty == true { throw fail(.vae, "must name a VAE (or be left out)") }
        if let refinerSwitch {
            if !refinerSwitch.isFinite || refinerSwitch <= 0 || refinerSwitch >= 1 {
                throw fail(.refinerSwitch, "must be in (0, 1): the share of the steps before the refiner takes over, got \(refinerSwitch)")
            }
            if refiner == nil { throw fail(.refinerSwitch, "needs a refiner") }
        }
        let multiple = GenerationLimits.sizeMultiple
        for (field, value) in [(Field.width, width), (.height, height)] {
            if let value, value < multiple || value > limits.maxSide || value % multiple != 0 {
                throw fail(field, "must be a multiple of \(multiple) between \(multiple) and \(limits.maxSide), got \(value)")
            }
        }
        if let width, let height, width * height > limits.maxPixels {
            throw fail(.width, "\(width)x\(height) exceeds \(limits.maxPixels) pixels")
        }
        if steps < 1 || steps > limits.maxSteps { throw fail(.steps, "must be 1...\(limits.maxSteps), got \(steps)") }
        if !cfgScale.isFinite || !GenerationLimits.cfgScales.contains(cfgScale) {
            throw fail(.cfgScale, "must be between 0 and 100, got \(cfgScale)")
        }
        if sampler.isEmpty { throw fail(.sampler, "must name a sampler") }
        // The API declares seeds as int64 (docs/openapi.yaml): clients that read them as such must get them back.
        if seed > UInt64(Int64.max) { throw fail(.seed, "must be 0…\(Int64.max), got \(seed)") }
        if mask != nil && initImage == nil { throw fail(.mask, "needs an init image") }
        if outpaint != nil && initImage == nil { throw fail(.outpaint, "needs an init image") }
        if outpaint != nil && mask != nil { throw fail(.outpaint, "cannot be combined with a mask") }
        if let strength, !strength.isFinite || strength <= 0 || strength > 1 { throw fail(.strength, "must be in (0, 1], got \(strength)") }
        if let maskBlur, !maskBlur.isFinite || maskBlur < 0 || maskBlur > GenerationLimits.maxMaskBlur {
            throw fail(.maskBlur, "must be 0...64 pixels")
        }
        if let outpaint, outpaint.values.contains(where: { $0 < 0 || $0 > GenerationLimits.maxOutpaint }) || outpaint.values.allSatisfy({ $0 == 0 }) {
            throw fail(.outpaint, "must be [left, right, top, bottom]: four pixel counts 0...2048, not all 0")
        }
        if let clipSkip, !GenerationLimits.clipSkips.contains(clipSkip) { throw fail(.clipSkip, "must be 1...12, got \(clipSkip)") }
        if controlnets.count > GenerationLimits.maxControlNets { throw fail(.controlnets, "at most 4, got \(controlnets.count)") }
        if loras.count > GenerationLimits.maxLoRAs { throw fail(.loras, "at most \(GenerationLimits.maxLoRAs), got \(loras.count)") }
        for (index, lora) in loras.enumerated() {
            if lora.name.isEmpty || lora.name.utf8.contains(where: { $0 < 32 || $0 == UInt8(ascii: ",") }) {
                throw fail(.loraName(index), "must name a LoRA (its file's stem), without commas or control characters")
            }
            if !lora.weight.isFinite || !GenerationLimits.loraWeights.contains(lora.weight) {
                throw fail(.loraWeight(index), "must be -10...10, got \(lora.weight)")
            }
        }
        if let tokenMergingRatio, !tokenMergingRatio.isFinite || !GenerationLimits.tokenMergingRatios.contains(tokenMergingRatio) {
            throw fail(.tokenMergingRatio, "must be 0...0.75 (the share of tokens merged; 3 of every 4 at most), got \(tokenMergingRatio)")
        }
        if let deepCacheInterval, deepCacheInterval < 1 || deepCacheInterval > limits.maxSteps {
            throw fail(.deepCacheInterval, "must be 1...\(limits.maxSteps) (steps between full UNet passes; 1: off), got \(deepCacheInterval)")
        }
        if let deepCacheBranch {
            if !GenerationLimits.deepCacheBranches.contains(deepCacheBranch) {
                throw fail(.deepCacheBranch, "must be 0...11 (block × 3 + layer from the UNet's top), got \(deepCacheBranch)")
            }
            if (deepCacheInterval ?? 1) <= 1 { throw fail(.deepCacheBranch, "needs a DeepCache interval of 2 or more (--deepcache N)") }
        }
        try validateFinishing(limits: limits)
        for (index, control) in controlnets.enumerated() {
            if control.model.isEmpty { throw fail(.controlModel(index), "must name a ControlNet") }
            if !control.scale.isFinite || !GenerationLimits.controlScales.contains(control.scale) {
                throw fail(.controlScale(index), "must be 0...10")
            }
        }
    }
}

extension String {
    /// `init_image` → `init-image`.
    fileprivate var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}
