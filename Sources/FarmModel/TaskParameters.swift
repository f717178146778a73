// Module FarmModel: what the farm's parts say to each other: task parameters and limits, task states, the wire
// protocol, live events, log metadata. Imports only Generation (the request's vocabulary and limits), swift-log and
// swift-metrics.

import Generation

/// What one task renders: everything a worker needs to make one image.
public struct TaskParameters: Codable, Equatable, Sendable {
    /// The text to draw.
    public var prompt: String
    /// What to steer away from.
    public var negativePrompt: String
    /// The model's name as the worker knows it.
    public var model: String
    /// SHA-256 of the model's file in the farm's model store, set by the store when a job names a stored model (its
    /// only writer): a worker fetches and verifies that file instead of looking the name up in its `--models` folder.
    public var modelSHA256: String?
    /// SHA-256s of the stored LoRAs, VAE and upscaler the task names, set by the model store with `modelSHA256` (its only writer).
    public var storedAddOns: StoredAddOns?
    /// Output width in pixels (a multiple of 8); nil: the model's native size (its UNet's sample size times
    /// its VAE's scale, as diffusers defaults), or the init image's.
    public var width: Int?
    /// Output height in pixels (a multiple of 8); nil as for `width`.
    public var height: Int?
    /// Denoising steps.
    public var steps: Int
    /// Classifier-free guidance scale.
    public var cfgScale: Double
    /// The sampler's name (`euler_a`, `dpmpp_2m`, …).
    public var sampler: String
    /// The seed of the initial noise.
    public var seed: UInt64
    /// img2img/inpainting/outpainting source: SHA-256 (hex) of a PNG stored with the job.
    public var initImage: String?
    /// Inpainting mask (white = repaint): SHA-256 (hex) of a stored PNG.
    public var mask: String?
    /// How much of the init image is repainted (default `GenerationRequest.defaultStrength`).
    public var strength: Double?
    /// Blur in pixels of the mask that pastes the result over the original (default `GenerationRequest.defaultMaskBlur`).
    public var maskBlur: Double?
    /// Outpainting: pixels added on the left, right, top and bottom.
    public var outpaint: [Int]?
    /// ControlNets (by the worker's model name) with their control images and scales.
    public var controlnets: [Control]?
    /// Text-encoder layer from the end (1 = last, 2 = penultimate).
    public var clipSkip: Int?
    /// A second model (by the worker's name) that runs the last steps, as SDXL's refiner.
    public var refiner: String?
    /// The share of the steps the model runs before the refiner takes over, in (0, 1) (default
    /// `GenerationRequest.defaultRefinerSwitch`).
    public var refinerSwitch: Double?
    /// A VAE (by the worker's name for it) that replaces the model's own.
    public var vae: String?
    /// LoRAs (by their file stems in the workers' `--lora-dir`) applied besides the prompt's `<lora:…>` tags.
    public var loras: [LoRA]?
    /// An upscaler model (by file stem in the worker's models folder) that enlarges the finished image, as the web
    /// UI's extras tab does after a render.
    public var upscaler: String?
    /// How much `upscaler` enlarges the image (default: the model's own scale).
    public var upscaleBy: Double?
    /// Worker tags (`farm worker --tag`) a worker must have all of to run this task (a spec's `require`).
    public var require: [String]?
    /// Token merging (ToMe) ratio of the full-resolution self-attention tokens (nil or 0: off).
    public var tokenMergingRatio: Double?
    /// DeepCache: the whole UNet runs every this many steps, the deep features are reused between (nil or 1: off).
    public var deepCacheInterval: Int?
    /// DeepCache's cache branch (default 0).
    public var deepCacheBranch: Int?
    /// Variation seed: the noise is slerped toward this seed's by `subseedStrength`.
    public var subseed: UInt64?
    /// How far toward the variation seed's noise, in [0, 1].
    public var subseedStrength: Double?
    /// Seed resize from: `[width, height]` the seed's noise is drawn at and pasted centred.
    public var seedResizeFrom: [Int]?
    /// How an init image of another size is fitted: the web UI's resize mode 0...3 (default 0, just resize).
    public var resizeMode: Int?
    /// Hires fix: upscale factor (or `hiresWidth`/`hiresHeight`); any hires field asks for hires fix.
    public var hiresScale: Double?
    /// Hires fix: target width in pixels.
    public var hiresWidth: Int?
    /// Hires fix: target height in pixels.
    public var hiresHeight: Int?
    /// Hires fix: the upscaler (a latent mode such as `bilinear`, or the web UI's `Latent (bicubic)`).
    public var hiresUpscaler: String?
    /// Hires fix: the second pass's steps.
    public var hiresSteps: Int?
    /// Hires fix: the second pass's strength, in (0, 1].
    public var hiresDenoise: Double?
    /// Hires fix: the second pass's prompt.
    public var hiresPrompt: String?
    /// Hires fix: the second pass's negative prompt.
    public var hiresNegativePrompt: String?
    /// Hires fix: the second pass's sampler.
    public var hiresSampler: String?

    /// One LoRA of a task: `{name, weight}`.
    public struct LoRA: Codable, Equatable, Sendable {
        /// The LoRA's file stem in the worker's LoRA folder.
        public var name: String
        /// Its weight.
        public var weight: Double

        /// Makes a LoRA reference.
        public init(name: String, weight: Double = 1) {
            self.name = name
            self.weight = weight
        }
    }

    /// One ControlNet of a task.
    public struct Control: Codable, Equatable, Sendable {
        /// The ControlNet's name in the worker's models folder.
        public var model: String
        /// SHA-256 (hex) of the stored control image.
        public var image: String
        /// Conditioning scale.
        public var scale: Double

        /// Makes a control.
        public init(model: String, image: String, scale: Double = 1) {
            self.model = model
            self.image = image
            self.scale = scale
        }
    }

    /// The content addresses of the stored images this task needs.
    public var inputHashes: [String] {
        [initImage, mask].compactMap { $0 } + (controlnets ?? []).map(\.image)
    }

    /// Builds parameters; defaults are `GenerationRequest`'s.
    public init(
        prompt: String, negativePrompt: String = "", model: String = "demo", width: Int? = nil,
        height: Int? = nil, steps: Int = GenerationRequest.defaultSteps, cfgScale: Double = GenerationRequest.defaultCFGScale,
        sampler: String = GenerationRequest.defaultSampler, seed: UInt64 = 0
    ) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.model = model
        self.width = width
        self.height = height
        self.steps = steps
        self.cfgScale = cfgScale
        self.sampler = sampler
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey {
        case prompt
        case negativePrompt = "negative_prompt"
        case model, width, height, steps
        case modelSHA256 = "model_sha256"
        case storedAddOns = "stored_add_ons"
        case cfgScale = "cfg_scale"
        case sampler, seed
        case initImage = "init_image"
        case mask, strength
        case maskBlur = "mask_blur"
        case outpaint, controlnets
        case clipSkip = "clip_skip"
        case refiner
        case refinerSwitch = "refiner_switch"
        case vae, loras, require, subseed, upscaler
        case upscaleBy = "upscale_by"
        case subseedStrength = "subseed_strength"
        case tokenMergingRatio = "token_merging_ratio"
        case deepCacheInterval = "deepcache_interval"
        case deepCacheBranch = "deepcache_branch"
        case seedResizeFrom = "seed_resize_from"
        case resizeMode = "resize_mode"
        case hiresScale = "hires_scale"
        case hiresWidth = "hires_width"
        case hiresHeight = "hires_height"
        case hiresUpscaler = "hires_upscaler"
        case hiresSteps = "hires_steps"
        case hiresDenoise = "hires_denoise"
        case hiresPrompt = "hires_prompt"
        case hiresNegativePrompt = "hires_negative_prompt"
        case hiresSampler = "hires_sampler"
    }

    /// True for the name tasks give a stored image: its SHA-256, 64 lowercase hex digits.
    public static func isStoredImageName(_ value: String) -> Bool {
        value.utf8.count == 64 && value.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Checks every field against the farm's limits; the error names the field. The generation parameters are
    /// checked by `GenerationRequest.validate` (the one set of limits `farm render` shares); what only the wire has
    /// (name lengths, stored-image hashes, the outpaint list's shape) is checked here.
    public func validate(limits: Limits = Limits()) throws {
        func fail(_ field: String, _ why: String) -> ValidationFailure {
            ValidationFailure(field: field, message: why)
        }
        if prompt.isEmpty { throw fail("prompt", "must not be empty") }
        for (field, value) in [
            ("model", model), ("sampler", sampler), ("refiner", refiner ?? ""), ("vae", vae ?? ""), ("hires_upscaler", hiresUpscaler ?? ""),
            ("hires_sampler", hiresSampler ?? ""),
        ]
        where value.utf8.count > limits.maxNameBytes {
            throw fail(field, "is \(value.utf8.count) bytes; the limit is \(limits.maxNameBytes)")
        }
        for (index, lora) in (loras ?? []).enumerated() where lora.name.utf8.count > limits.maxNameBytes {
            throw fail("loras[\(index)].name", "is \(lora.name.utf8.count) bytes; the limit is \(limits.maxNameBytes)")
        }
        for (index, tag) in (require ?? []).enumerated() where tag.isEmpty || tag.utf8.count > limits.maxNameBytes {
            throw fail("require[\(index)]", "a tag is 1...\(limits.maxNameBytes) bytes")
        }
        if let upscaler, upscaler.isEmpty || upscaler.utf8.count > limits.maxNameBytes {
            throw fail("upscaler", "is 1...\(limits.maxNameBytes) bytes: an upscaler file's name in the workers' models folders")
        }
        if let upscaleBy {
            guard upscaler != nil else { throw fail("upscale_by", "needs an upscaler") }
            guard upscaleBy > 0 && upscaleBy <= 8 else { throw fail("upscale_by", "must be above 0 and at most 8, got \(upscaleBy)") }
            let side = Double(max(width ?? 0, height ?? 0)) * upscaleBy
            if side > Double(limits.maxSide) {
                throw fail("upscale_by", "makes a side of \(Int(side)) pixels; the limit is \(limits.maxSide)")
            }
        }
        if let modelSHA256, !Self.isStoredImageName(modelSHA256) {
            throw fail("model_sha256", "must be 64 lowercase hex digits (a SHA-256), set by the model store")
        }
        try validateStoredAddOns()
        if let seedResizeFrom, seedResizeFrom.count != 2 { throw fail("seed_resize_from", "must be [width, height]") }
        if let resizeMode, ResizeMode(rawValue: resizeMode) == nil {
            throw fail("resize_mode", "must be 0 (just resize), 1 (crop and resize), 2 (resize and fill) or 3 (latent upscale), got \(resizeMode)")
        }
        if let outpaint, outpaint.count != 4 {
            throw fail("outpaint", "must be [left, right, top, bottom]: four pixel counts 0...2048, not all 0")
        }
        do { try GenerationRequest(self).validate(limits: limits.generation) } catch let error as InvalidGenerationRequest {
            throw fail(error.field.key, error.message)
        }
        let isHash = Self.isStoredImageName
        for (field, value) in [("init_image", initImage), ("mask", mask)] {
            if let value, !isHash(value) { throw fail(field, "must be the SHA-256 (64 lowercase hex digits) of a stored image") }
        }
        for (index, control) in (controlnets ?? []).enumerated() where !isHash(control.image) {
            throw fail("controlnets[\(index)].image", "must be the SHA-256 of a stored image")
        }
    }
}

/// The farm's input limits, so that no client can ask for unbounded work or memory.
public struct Limits: Codable, Sendable {
    /// Longest prompt, in UTF-8 bytes.
    public var maxPromptBytes = GenerationLimits().maxPromptBytes
    /// Largest image side, in pixels.
    public var maxSide = GenerationLimits().maxSide
    /// Largest image area, in pixels.
    public var maxPixels = GenerationLimits().maxPixels
    /// Most denoising steps.
    public var maxSteps = GenerationLimits().maxSteps
    /// Most tasks in one job.
    public var maxTasksPerJob = 1_000_000
    /// Largest wire message, in bytes.
    public var maxMessageBytes = 64 * 1024 * 1024
    /// Largest preview PNG a worker sends and a coordinator keeps (latent-resolution previews are a few KB).
    public var maxPreviewBytes = 1 << 20
    /// Most tasks one worker may run at once.
    public var maxWorkerSlots = 64
    /// Most models one worker may announce.
    public var maxWorkerModels = 1_000
    /// Longest worker, host, model, sampler or job name, in UTF-8 bytes.
    public var maxNameBytes = 200
    /// Job priorities a submission may ask for.
    public var priorities = -1_000...1_000

    /// Checks a job's own fields (its tasks are checked one by one); the error names the field.
    public func validateJob(name: String, priority: Int, maxAttempts: Int) throws {
        if name.isEmpty || name.utf8.count > maxNameBytes {
            throw ValidationFailure(field: "name", message: "must be 1…\(maxNameBytes) bytes, got \(name.utf8.count)")
        }
        if name.utf8.contains(0) { throw ValidationFailure(field: "name", message: "must not contain NUL bytes") }
        if !priorities.contains(priority) {
            throw ValidationFailure(field: "priority", message: "must be \(priorities.lowerBound)…\(priorities.upperBound), got \(priority)")
        }
        if !(1...100).contains(maxAttempts) {
            throw ValidationFailure(field: "max_attempts", message: "must be 1…100, got \(maxAttempts)")
        }
    }

    /// The limits on a generation request (prompt, size, steps) within these.
    public var generation: GenerationLimits {
        GenerationLimits(maxPromptBytes: maxPromptBytes, maxSide: maxSide, maxPixels: maxPixels, maxSteps: maxSteps)
    }

    /// The default limits.
    public init() {}
}

/// A bad input, naming the field it is about.
public struct ValidationFailure: Error, Equatable, CustomStringConvertible {
    /// The offending field's name as the user wrote it.
    public var field: String
    /// What is wrong with it and what is allowed.
    public var message: String

    /// Makes a failure for `field`.
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}
