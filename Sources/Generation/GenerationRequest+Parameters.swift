extension GenerationRequest {
    /// The AUTOMATIC1111 web UI's `parameters` text of this request's image of `width` × `height` (the size
    /// actually rendered), as PNGs carry it and the tools that read them parse it back: the prompt,
    /// `Negative prompt: …`, then the settings line. The one writer of that text, for `farm render` and the
    /// workers alike; image `index` of a batch has seed `seed + index`. A VAE follows the model (`VAE: name`) and
    /// a refiner comes last (`Refiner: name, Refiner switch at: 0.8`), where the web UI writes them; all three
    /// are named as `modelName` names the model.
    public func parametersText(width: Int, height: Int, index: Int = 0) -> String {
        var lines = [prompt]
        if !negativePrompt.isEmpty { lines.append("Negative prompt: \(negativePrompt)") }
        let samplerText = (try? samplerName.webUIName) ?? sampler
        var settings =
            "Steps: \(steps), Sampler: \(samplerText), CFG scale: \(cfgScale), Seed: \(seed &+ UInt64(index)), Size: \(width)x\(height), Model: \(modelName)"
        if let vae { settings += ", VAE: \(Self.shortName(vae))" }
        if effectiveClipSkip > 1 { settings += ", Clip skip: \(effectiveClipSkip)" }
        if initImage != nil && outpaint == nil { settings += ", Denoising strength: \(effectiveStrength)" }
        if mask != nil { settings += ", Mask blur: \(Int(effectiveMaskBlur))" }
        if rng == .philox { settings += ", RNG: NV" }
        if let refiner { settings += ", Refiner: \(Self.shortName(refiner)), Refiner switch at: \(effectiveRefinerSwitch)" }
        lines.append(settings)
        return lines.joined(separator: "\n")
    }

    /// The model's name as the text shows it: a path's last component without its `.safetensors`/`.ckpt`
    /// extension (`farm render --model ~/models/sd15.safetensors` → `sd15`), a name as it is.
    public var modelName: String { Self.shortName(model) }

    /// A model's (or VAE's) name as the text shows it: the last component of a path without its
    /// `.safetensors`/`.ckpt` extension; a name as it is.
    public static func shortName(_ reference: String) -> String {
        var name = reference
        while name.count > 1 && name.hasSuffix("/") { name.removeLast() }
        if let slash = name.lastIndex(of: "/") { name = String(name[name.index(after: slash)...]) }
        for suffix in [".safetensors", ".ckpt"] where name.lowercased().hasSuffix(suffix) && name.count > suffix.count {
            name.removeLast(suffix.count)
        }
        return name
    }
}
