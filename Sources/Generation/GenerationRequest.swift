// Module Generation: the one owner of a generation request: its parameters, their defaults, their limits and
// validation, the sampler and noise names, and the web UI's `parameters` text. Imports nothing: the engine
// (StableDiffusion, which re-exports it) and the farm (FarmModel, `farm`) both build requests through it.

/// What to draw: every parameter of one render besides the model's weights and the input pixels, with the
/// defaults `farm render`, `farm submit` and the worker share. Inputs (init image, mask, control images and
/// ControlNets) are references: file paths for `farm render`, SHA-256s of stored images on the farm.
public struct GenerationRequest: Equatable, Sendable {
    /// The text to draw (web-UI syntax: weights, BREAK, long prompts).
    public var prompt: String
    /// What to steer away from.
    public var negativePrompt = ""
    /// The model: a name the workers know, or for `farm render` a path or a bundled model's name.
    public var model: String
    /// Output width in pixels; nil: the init image's, else the model's native size.
    public var width: Int?
    /// Output height in pixels; nil as for `width`.
    public var height: Int?
    /// Denoising steps.
    public var steps = GenerationRequest.defaultSteps
    /// Classifier-free guidance scale.
    public var cfgScale = GenerationRequest.defaultCFGScale
    /// The sampler's name as given (`euler_a`, `dpmpp_2m`, …); the engine that runs it parses it (`samplerName`).
    public var sampler = GenerationRequest.defaultSampler
    /// The seed of the first image.
    public var seed: UInt64 = 0
    /// Text-encoder layer from the end (1 = last, 2 = penultimate); nil: 1.
    public var clipSkip: Int?
    /// The generator the seed drives (the farm always uses the CPU one).
    public var rng = NoiseSource.cpu
    /// img2img/inpainting/outpainting source image.
    public var initImage: String?
    /// Inpainting mask (white = repaint).
    public var mask: String?
    /// How much of the init image is repainted; nil: `defaultStrength`.
    public var strength: Double?
    /// Blur in pixels of the mask that pastes the result over the original; nil: `defaultMaskBlur`.
    public var maskBlur: Double?
    /// Outpainting: pixels added on each side of the init image.
    public var outpaint: Outpaint?
    /// ControlNets with their control images and scales.
    public var controlnets: [Control] = []
    /// SDXL refiner model (a name the workers know, or for `farm render` a path) that finishes the render.
    public var refiner: String?
    /// The fraction of the schedule the base denoises before the refiner takes over; nil: `defaultRefinerSwitch`.
    public var refinerSwitch: Double?
    /// A VAE (name or path) to decode with instead of the model's own.
    public var vae: String?
    /// LoRAs applied besides the prompt's `<lora:NAME:W>` tags: names the workers (or `--lora-dir`) have, or for
    /// `farm render` file paths.
    public var loras: [LoRA] = []
    /// Variation seed (the web UI's subseed): image i's noise is blended toward the noise of `subseed + i`.
    public var subseed: UInt64?
    /// How far toward the variation seed's noise, in [0, 1] (spherical interpolation); nil or 0: none.
    public var subseedStrength: Double?
    /// Seed resize from: the seed's noise is drawn at this size and pasted centred into the render's (the web UI's
    /// way of keeping a composition when the size changes); nil: none.
    public var seedResizeFrom: PixelSize?
    /// How an init image of another size than the render is fitted; nil: `ResizeMode.justResize`.
    public var resizeMode: ResizeMode?
    /// Hires fix: a second, img2img pass at a larger size; nil: none.
    public var hires: Hires?
    /// Token merging (ToMe for SD, as the web UI applies it): the share of the full-resolution self-attention tokens
    /// merged, in [0, 0.75]; nil or 0: none. Lossy: faster at large sizes, a slightly different picture.
    public var tokenMergingRatio: Double?
    /// DeepCache: the whole UNet runs every this many steps, the steps between reuse its deep features; nil or 1:
    /// every step runs the whole UNet. Lossy.
    public var deepCacheInterval: Int?
    /// DeepCache's cache branch (block branch / 3, layer branch % 3 from the UNet's top; 0 caches the most); nil: 0.
    public var deepCacheBranch: Int?

    /// Denoising steps when none are given.
    public static let defaultSteps = 20
    /// Guidance scale when none is given (SD 1.5's usual one).
    public static let defaultCFGScale = 7.5
    /// The sampler when none is given.
    public static let defaultSampler = SamplerName.eulerAncestral.rawValue
    /// The img2img strength when none is given (the web UI's default denoising strength).
    public static let defaultStrength = 0.75
    /// The mask blur when none is given, in pixels (the web UI's default).
    public static let defaultMaskBlur: Double = 4
    /// Where the refiner takes over when no switch is given (diffusers' and the web UI's usual 0.8).
    public static let defaultRefinerSwitch = 0.8

    /// Pixels added on each side of an image to outpaint it.
    public struct Outpaint: Equatable, Sendable {
        /// Pixels added on the left.
        public var left: Int
        /// Pixels added on the right.
        public var right: Int
        /// Pixels added at the top.
        public var top: Int
        /// Pixels added at the bottom.
        public var bottom: Int

        /// Makes extents.
        public init(left: Int, right: Int, top: Int, bottom: Int) {
            (self.left, self.right, self.top, self.bottom) = (left, right, top, bottom)
        }

        /// Extents from `[left, right, top, bottom]`; nil unless there are four.
        public init?(_ values: [Int]) {
            guard values.count == 4 else { return nil }
            self.init(left: values[0], right: values[1], top: values[2], bottom: values[3])
        }

        /// `[left, right, top, bottom]`.
        public var values: [Int] { [left, right, top, bottom] }
    }

    /// One ControlNet of a request.
    public struct Control: Equatable, Sendable {
        /// The ControlNet: a worker's model name, or a folder for `farm render`.
        public var model: String
        /// The control image.
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

    /// One LoRA a request names outside its prompt, with its weight on the UNet and the text encoders.
    public struct LoRA: Equatable, Sendable {
        /// A LoRA's name (its file's stem) or, for `farm render`, its file's path.
        public var name: String
        /// Its weight (the web UI's multiplier; negative pushes away from what it learned).
        public var weight: Double

        /// Makes a LoRA reference.
        public init(name: String, weight: Double = 1) {
            self.name = name
            self.weight = weight
        }

        /// Parses `NAME[:WEIGHT]` (the weight after the last colon, default 1); nil for an empty name or a bad weight.
        public init?(parsing text: String) {
            func trimmed(_ part: Substring) -> String {
                String(part.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
            }
            if let colon = text.lastIndex(of: ":"), let weight = Double(trimmed(text[text.index(after: colon)...])) {
                self.init(name: trimmed(text[..<colon]), weight: weight)
            } else {
                self.init(name: trimmed(text[...]))
            }
            if name.isEmpty { return nil }
        }

        /// `NAME:WEIGHT`, as `init(parsing:)` reads it.
        public var text: String { "\(name):\(weight)" }
    }

    /// A text-to-image request with the default settings.
    public init(prompt: String, model: String) {
        self.prompt = prompt
        self.model = model
    }

    /// The strength actually used: the given one, `defaultStrength`, or 1 when outpainting (the new area is all noise).
    public var effectiveStrength: Double { outpaint != nil ? 1 : strength ?? Self.defaultStrength }

    /// The mask blur actually used.
    public var effectiveMaskBlur: Double { maskBlur ?? Self.defaultMaskBlur }

    /// The refiner switch actually used.
    public var effectiveRefinerSwitch: Double { refinerSwitch ?? Self.defaultRefinerSwitch }

    /// The text-encoder layer actually used.
    public var effectiveClipSkip: Int { clipSkip ?? 1 }

    /// The sampler, parsed; throws for an unknown name, listing the known ones.
    public var samplerName: SamplerName {
        get throws { try SamplerName(parsing: sampler) }
    }
}
