/// The generation parameters as the AUTOMATIC1111 web UI writes them into a PNG's `parameters` text
/// (and the tools that read its PNGs parse back): the one writer of that text, for `farm render` and
/// the farm's workers alike.
public struct A1111Parameters: Equatable, Sendable {
    /// The prompt as the user wrote it.
    public var prompt: String
    /// The negative prompt; empty: no line for it.
    public var negative = ""
    /// Sampler steps.
    public var steps: Int
    /// The sampler's name as the engine knows it (`euler_a`); written with the web UI's name (`Euler a`).
    public var sampler: String
    /// Classifier-free guidance scale.
    public var cfg: Double
    /// The image's seed.
    public var seed: UInt64
    /// The image's size.
    public var width: Int, height: Int
    /// The model's name.
    public var model: String
    /// Text-encoder layer from the end; written only above 1, as the web UI does.
    public var clipSkip = 1
    /// img2img and inpainting: how much was repainted.
    public var denoisingStrength: Double?
    /// Inpainting: the blur of the pasting mask, in pixels.
    public var maskBlur: Double?
    /// The noise came from the CUDA-compatible Philox generator (the web UI's "NV" setting).
    public var philox = false

    /// Parameters of one image.
    public init(prompt: String, steps: Int, sampler: String, cfg: Double, seed: UInt64, width: Int, height: Int, model: String) {
        self.prompt = prompt
        self.steps = steps
        self.sampler = sampler
        self.cfg = cfg
        self.seed = seed
        self.width = width
        self.height = height
        self.model = model
    }

    /// The web UI's display name of each sampler.
    public static func displayName(of sampler: SamplerName) -> String {
        switch sampler {
        case .ddim: return "DDIM"
        case .ddpm: return "DDPM"
        case .pndm: return "PLMS"
        case .lms: return "LMS"
        case .euler: return "Euler"
        case .eulerAncestral: return "Euler a"
        case .heun: return "Heun"
        case .dpmpp2m: return "DPM++ 2M"
        case .dpmpp2mKarras: return "DPM++ 2M Karras"
        case .dpm2: return "DPM2"
        case .unipc: return "UniPC"
        case .lcm: return "LCM"
        case .dpmppSDEKarras: return "DPM++ SDE Karras"
        }
    }

    /// The `parameters` text: the prompt, `Negative prompt: …`, then the settings line.
    public var text: String {
        var lines = [prompt]
        if !negative.isEmpty { lines.append("Negative prompt: \(negative)") }
        let samplerName = (try? SamplerName(parsing: sampler)).map(Self.displayName(of:)) ?? sampler
        var settings = "Steps: \(steps), Sampler: \(samplerName), CFG scale: \(cfg), Seed: \(seed), Size: \(width)x\(height), Model: \(model)"
        if clipSkip > 1 { settings += ", Clip skip: \(clipSkip)" }
        if let denoisingStrength { settings += ", Denoising strength: \(denoisingStrength)" }
        if let maskBlur { settings += ", Mask blur: \(Int(maskBlur))" }
        if philox { settings += ", RNG: NV" }
        lines.append(settings)
        return lines.joined(separator: "\n")
    }
}
