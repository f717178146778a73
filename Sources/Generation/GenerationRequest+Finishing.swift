extension GenerationRequest {
    /// Hires fix as the web UI runs it: a first pass at the request's size, the latents upscaled, then an img2img
    /// pass at the larger size from the same seeds. The target is `scale` times the first pass, or `width` and/or
    /// `height` (one alone keeps the aspect; both crop the upscaled latents centred to that aspect, as the web UI).
    public struct Hires: Equatable, Sendable {
        /// Upscale factor; nil: `defaultHiresScale` unless `width` or `height` is given.
        public var scale: Double?
        /// Target width in pixels (the web UI's "Resize width to").
        public var width: Int?
        /// Target height in pixels.
        public var height: Int?
        /// The upscaler's name (`HiresUpscaler(parsing:)`); nil: `HiresUpscaler.standard`.
        public var upscaler: String?
        /// The second pass's steps (its schedule's length, of which `denoise` runs); nil: the first pass's.
        public var steps: Int?
        /// The second pass's strength, in (0, 1]; nil: `defaultHiresDenoise`.
        public var denoise: Double?
        /// The second pass's prompt; nil: the first pass's.
        public var prompt: String?
        /// The second pass's negative prompt; nil: the first pass's.
        public var negativePrompt: String?
        /// The second pass's sampler; nil: the first pass's.
        public var sampler: String?

        /// A hires pass with every setting at its default (2× with the "Latent" upscaler, strength 0.7).
        public init(scale: Double? = nil, width: Int? = nil, height: Int? = nil) {
            self.scale = scale
            self.width = width
            self.height = height
        }

        /// The upscaler, parsed.
        public var effectiveUpscaler: HiresUpscaler { upscaler.map(HiresUpscaler.init(parsing:)) ?? .standard }
        /// The second pass's strength actually used.
        public var effectiveDenoise: Double { denoise ?? GenerationRequest.defaultHiresDenoise }

        /// Where a first pass of `width` × `height` goes, as the web UI's `calculate_target_resolution`: `upscaled` is
        /// the size the latents are interpolated to, `final` the size after the centred crop (the same unless both
        /// `width` and `height` are given with another aspect than the first pass's).
        public func target(width baseWidth: Int, height baseHeight: Int) -> (upscaled: PixelSize, final: PixelSize) {
            switch (width, height) {
            case (nil, nil):
                let factor = scale ?? GenerationRequest.defaultHiresScale
                let size = PixelSize(width: Int(Double(baseWidth) * factor), height: Int(Double(baseHeight) * factor))
                return (size, size)
            case (let width?, nil):
                let size = PixelSize(width: width, height: width * baseHeight / baseWidth)
                return (size, size)
            case (nil, let height?):
                let size = PixelSize(width: height * baseWidth / baseHeight, height: height)
                return (size, size)
            case (let width?, let height?):
                // Cover the target keeping the first pass's aspect; the overflow is cropped in latent space.
                let covering =
                    Double(baseWidth) / Double(baseHeight) < Double(width) / Double(height)
                    ? PixelSize(width: width, height: width * baseHeight / baseWidth)
                    : PixelSize(width: height * baseWidth / baseHeight, height: height)
                return (covering, PixelSize(width: width, height: height))
            }
        }
    }

    /// The hires upscale factor when neither a factor nor a target size is given (the web UI's default).
    public static let defaultHiresScale = 2.0
    /// The hires pass's strength when none is given (the web UI's default denoising strength for hires fix).
    public static let defaultHiresDenoise = 0.7
    /// The largest hires upscale factor.
    public static let maxHiresScale = 8.0

    /// The resize mode actually used.
    public var effectiveResizeMode: ResizeMode { resizeMode ?? .justResize }

    /// The variation strength actually used (0: none).
    public var effectiveSubseedStrength: Double { subseedStrength ?? 0 }

    /// Checks the variation-seed, resize-mode and hires fields (called by `validate`); the error names the field.
    func validateFinishing(limits: GenerationLimits) throws {
        func fail(_ field: Field, _ why: String) -> InvalidGenerationRequest { InvalidGenerationRequest(field, why) }
        if let subseed, subseed > UInt64(Int64.max) { throw fail(.subseed, "must be 0…\(Int64.max), got \(subseed)") }
        if let subseedStrength {
            if !subseedStrength.isFinite || subseedStrength < 0 || subseedStrength > 1 {
                throw fail(.subseedStrength, "must be in [0, 1], got \(subseedStrength)")
            }
            if subseedStrength > 0 && subseed == nil { throw fail(.subseedStrength, "needs a variation seed (subseed)") }
        }
        if let size = seedResizeFrom {
            for value in [size.width, size.height] where value < GenerationLimits.sizeMultiple || value > limits.maxSide {
                throw fail(.seedResizeFrom, "must be W,H with sides \(GenerationLimits.sizeMultiple)...\(limits.maxSide), got \(size.text)")
            }
        }
        if resizeMode != nil && initImage == nil { throw fail(.resizeMode, "needs an init image") }
        guard let hires else { return }
        if hires.scale == nil && hires.width == nil && hires.height == nil {
            throw fail(.hiresScale, "hires fix needs a scale or a target width/height")
        }
        if hires.scale != nil && (hires.width != nil || hires.height != nil) {
            throw fail(.hiresScale, "give a scale or a target width/height, not both")
        }
        if let scale = hires.scale, !scale.isFinite || scale < 1 || scale > Self.maxHiresScale {
            throw fail(.hiresScale, "must be 1...\(Self.maxHiresScale), got \(scale)")
        }
        let multiple = GenerationLimits.sizeMultiple
        for (field, value) in [(Field.hiresWidth, hires.width), (.hiresHeight, hires.height)] {
            if let value, value < multiple || value > limits.maxSide || value % multiple != 0 {
                throw fail(field, "must be a multiple of \(multiple) between \(multiple) and \(limits.maxSide), got \(value)")
            }
        }
        if let steps = hires.steps, steps < 1 || steps > limits.maxSteps { throw fail(.hiresSteps, "must be 1...\(limits.maxSteps), got \(steps)") }
        if let denoise = hires.denoise, !denoise.isFinite || denoise <= 0 || denoise > 1 {
            throw fail(.hiresDenoise, "must be in (0, 1], got \(denoise)")
        }
        let texts: [(Field, String?)] = [
            (.hiresUpscaler, hires.upscaler), (.hiresPrompt, hires.prompt), (.hiresNegativePrompt, hires.negativePrompt),
            (.hiresSampler, hires.sampler),
        ]
        for case (let field, let value?) in texts {
            if value.utf8.contains(0) { throw fail(field, "must not contain NUL bytes") }
            if value.utf8.count > limits.maxPromptBytes { throw fail(field, "is \(value.utf8.count) bytes; the limit is \(limits.maxPromptBytes)") }
        }
        if hires.upscaler?.isEmpty == true { throw fail(.hiresUpscaler, "must name an upscaler (or be left out)") }
        if hires.sampler?.isEmpty == true { throw fail(.hiresSampler, "must name a sampler (or be left out)") }
        if initImage != nil || !controlnets.isEmpty || refiner != nil {
            throw fail(.hiresScale, "hires fix follows text-to-image: it does not take an init image, ControlNets or a refiner")
        }
        if let width, let height {
            let size = hires.target(width: width, height: height).final
            if size.width % multiple != 0 || size.height % multiple != 0 || size.width > limits.maxSide || size.height > limits.maxSide {
                throw fail(
                    .hiresScale, "makes \(size.width)x\(size.height); hires sizes must be multiples of \(multiple) up to \(limits.maxSide)")
            }
            if size.width * size.height > limits.maxPixels {
                throw fail(.hiresScale, "makes \(size.width)x\(size.height), over \(limits.maxPixels) pixels")
            }
        }
    }

    /// The `parameters` text's variation entries for image `index` (after `VAE`, where the web UI writes them).
    func variationText(index: Int) -> String {
        var text = ""
        if let subseed, effectiveSubseedStrength != 0 {
            text += ", Variation seed: \(subseed &+ UInt64(index)), Variation seed strength: \(effectiveSubseedStrength)"
        }
        if let size = seedResizeFrom { text += ", Seed resize from: \(size.width)x\(size.height)" }
        return text
    }

    /// The `parameters` text's hires entries (after `RNG`, before the add-on hashes, in the web UI's order).
    func hiresText() -> String {
        guard let hires else { return "" }
        var text = ""
        if let width = hires.width, let height = hires.height {
            text += ", Hires resize: \(width)x\(height)"
        } else if hires.width != nil || hires.height != nil {
            text += ", Hires resize: \(hires.width ?? 0)x\(hires.height ?? 0)"
        } else {
            text += ", Hires upscale: \(hires.scale ?? Self.defaultHiresScale)"
        }
        if let steps = hires.steps { text += ", Hires steps: \(steps)" }
        text += ", Hires upscaler: \(hires.effectiveUpscaler.webUIName)"
        if let sampler = hires.sampler, sampler != self.sampler {
            text += ", Hires sampler: \((try? SamplerName(parsing: sampler).webUIName) ?? sampler)"
        }
        if let prompt = hires.prompt, prompt != self.prompt { text += ", Hires prompt: \(Self.quotedIfNeeded(prompt))" }
        if let negative = hires.negativePrompt, negative != negativePrompt {
            text += ", Hires negative prompt: \(Self.quotedIfNeeded(negative))"
        }
        return text
    }

    /// A value as the web UI's `quote` writes it: as it is without commas, colons or newlines, else in JSON quotes.
    static func quotedIfNeeded(_ value: String) -> String {
        guard value.contains(where: { ",:\n".contains($0) }) else { return value }
        var escaped = ""
        for character in value {
            switch character {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return "\"" + escaped + "\""
    }
}
