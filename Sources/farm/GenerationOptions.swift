import ArgumentParser
import Foundation
import Generation

/// The generation flags `farm render` and `farm submit` share, turned into the one `GenerationRequest` both
/// (and the worker, from the task) render from. Unset flags stay nil here: `submit` passes only the flags given
/// to a spec as overrides; the request supplies the defaults.
struct GenerationOptions: ParsableArguments {
    @Option(help: "What to draw. Supports (word:1.2), (word), [word], BREAK and prompts longer than 75 tokens.")
    var prompt: String?

    @Option(help: "What to steer away from.")
    var negative = ""

    @Option(
        help:
            "The model: for render a diffusers folder, a single-file .safetensors, a .ckpt or the bundled `demo`; for submit a name the workers have (default test-pattern without a spec)."
    )
    var model: String?

    @Option(help: "Image width in pixels, a multiple of 8 (default: the init image's, else the model's native size).")
    var width: Int?

    @Option(help: "Image height in pixels, a multiple of 8 (default: the init image's, else the model's native size).")
    var height: Int?

    @Option(help: "Denoising steps (default \(GenerationRequest.defaultSteps)).")
    var steps: Int?

    @Option(help: "Classifier-free guidance scale (default \(GenerationRequest.defaultCFGScale)).")
    var cfg: Double?

    @Option(
        help: "Sampler (default \(GenerationRequest.defaultSampler)): \(SamplerName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var sampler: String?

    @Option(help: "Seed of the first image (images use seed, seed+1, …).")
    var seed: UInt64 = 0

    @Option(help: "Use the hidden states this many layers from the end (1 = last, 2 = penultimate).")
    var clipSkip: Int?

    @Option(help: "img2img/inpainting/outpainting source image (PNG).")
    var initImage: String?

    @Option(help: "How much of the init image to repaint, in (0, 1] (default \(GenerationRequest.defaultStrength)).")
    var strength: Double?

    @Option(help: "Inpainting mask (PNG, white = repaint, same size as the init image).")
    var mask: String?

    @Option(help: "Blur (pixels) of the mask used to paste the result over the original (default \(Int(GenerationRequest.defaultMaskBlur))).")
    var maskBlur: Double?

    // Unconditional: a value such as -8,0,0,0 is the option's (and refused by validation), not an unknown flag.
    @Option(parsing: .unconditional, help: "Outpaint: extend the init image by L,R,T,B pixels and paint the new area.")
    var outpaint: String?

    @Option(help: "A ControlNet (render: a diffusers folder; submit: the workers' model name); repeat for several.")
    var controlnet: [String] = []

    @Option(help: "The control image (PNG) of each --controlnet, in order.")
    var controlImage: [String] = []

    @Option(help: "The conditioning scale of each --controlnet (default 1).")
    var controlScale: [Double] = []

    @Option(
        help:
            "A second model that runs the last steps (SDXL's refiner): for render a path or a bundled model's name; for submit a name the workers have."
    )
    var refiner: String?

    @Option(
        help:
            "The share of the steps the model runs before --refiner takes over, in (0, 1) (default \(GenerationRequest.defaultRefinerSwitch)).")
    var refinerSwitch: Double?

    @Option(
        help:
            "A VAE to use instead of the model's: for render a diffusers vae folder or a .safetensors file; for submit a name the workers have. taesd (or a TAESD folder or file): decode with TAESD, fast and lower quality."
    )
    var vae: String?

    @Option(
        help: ArgumentHelp(
            "A LoRA and its weight (default 1), besides the prompt's <lora:NAME:W> tags: for render a file path or a name in --lora-dir; for submit a name the workers have. Repeat for several.",
            valueName: "name[:weight]"))
    var lora: [String] = []

    @Option(
        help:
            "Token merging (ToMe for SD, as the web UI): merge this share of the full-resolution self-attention tokens, 0...0.75 (default 0: off; lossy, faster at large sizes)."
    )
    var tome: Double?

    @Option(help: "DeepCache: run the whole UNet every N steps and reuse its deep features between (default 1: off; lossy).")
    var deepcache: Int?

    @Option(help: "DeepCache's cache branch: block×3 + layer from the UNet's top (default 0, the shallowest: the most reuse).")
    var deepcacheBranch: Int?

    @Option(help: "Variation seed: blend each image's noise toward this seed's (image i uses subseed + i).")
    var subseed: UInt64?

    @Option(help: "How far toward the --subseed noise, in [0, 1] (spherical interpolation, as the web UI).")
    var subseedStrength: Double?

    @Option(help: ArgumentHelp("Draw the seed's noise at this size and paste it centred (keeps a composition across sizes).", valueName: "W,H"))
    var seedResizeFrom: String?

    @Option(
        help:
            "How an init image of another size is fitted: 0 just_resize (default), 1 crop_and_resize, 2 resize_and_fill, 3 latent_upscale.")
    var resizeMode: String?

    @Option(help: "Hires fix: render, upscale the latents by this factor, then repaint at the larger size (default 2 with --hires-upscaler etc.).")
    var hiresScale: Double?

    @Option(help: "Hires fix: target width instead of --hires-scale (with --hires-height, cropped centred to that aspect).")
    var hiresWidth: Int?

    @Option(help: "Hires fix: target height instead of --hires-scale.")
    var hiresHeight: Int?

    @Option(
        help:
            "Hires fix upscaler: \(LatentUpscaleMode.allCases.map(\.rawValue).joined(separator: ", ")) or the web UI's names (default Latent, bilinear)."
    )
    var hiresUpscaler: String?

    @Option(help: "Hires fix: the second pass's steps (default: --steps).")
    var hiresSteps: Int?

    @Option(help: "Hires fix: the second pass's denoising strength, in (0, 1] (default \(GenerationRequest.defaultHiresDenoise)).")
    var hiresDenoise: Double?

    @Option(help: "Hires fix: the second pass's prompt (default: --prompt).")
    var hiresPrompt: String?

    @Option(help: "Hires fix: the second pass's negative prompt (default: --negative).")
    var hiresNegative: String?

    @Option(help: "Hires fix: the second pass's sampler (default: --sampler).")
    var hiresSampler: String?

    /// Parses `L,R,T,B` (numbers only: their range is the request's to check).
    static func extents(_ text: String) throws -> GenerationRequest.Outpaint {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let extents = GenerationRequest.Outpaint(parts.compactMap { $0 }) else {
            throw ValidationError("--outpaint must be L,R,T,B: four non-negative pixel counts (at most 2048), not all 0; got \(text)")
        }
        return extents
    }

    /// The request these flags ask for, checked against the one set of limits; its input references are the
    /// flags' file paths. `defaultModel` stands in for a missing `--model` (nil: the flag is required).
    func request(defaultModel: String? = nil) throws -> GenerationRequest {
        guard let prompt else { throw ValidationError("--prompt is required") }
        guard let model = model ?? defaultModel else { throw ValidationError("--model is required") }
        guard controlImage.count == controlnet.count else {
            throw ValidationError("give one --control-image per --controlnet (\(controlnet.count) nets, \(controlImage.count) images)")
        }
        guard controlScale.count <= controlnet.count else { throw ValidationError("--control-scale: at most one per --controlnet") }
        var request = GenerationRequest(prompt: prompt, model: model)
        request.negativePrompt = negative
        (request.width, request.height) = (width, height)
        request.steps = steps ?? request.steps
        request.cfgScale = cfg ?? request.cfgScale
        request.sampler = sampler ?? request.sampler
        request.seed = seed
        request.clipSkip = clipSkip
        request.initImage = initImage
        request.mask = mask
        request.strength = strength
        request.maskBlur = maskBlur
        request.outpaint = try outpaint.map(Self.extents)
        try finishing(into: &request)
        request.refiner = refiner
        request.refinerSwitch = refinerSwitch
        request.vae = vae
        request.loras = try lora.map { text in
            guard let parsed = GenerationRequest.LoRA(parsing: text) else {
                throw ValidationError("--lora must be NAME or NAME:WEIGHT (a path or a name, then a number), got \(text)")
            }
            return parsed
        }
        request.controlnets = zip(controlnet, controlImage).enumerated().map { index, pair in
            GenerationRequest.Control(model: pair.0, image: pair.1, scale: index < controlScale.count ? controlScale[index] : 1)
        }
        try Self.check(request)
        return request
    }

    /// Validates `request`, naming the flag in the error.
    static func check(_ request: GenerationRequest) throws {
        do { try request.validate() } catch let error as InvalidGenerationRequest { throw ValidationError(error.flagged) }
    }
}
