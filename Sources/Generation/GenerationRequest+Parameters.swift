extension GenerationRequest {
    /// The AUTOMATIC1111 web UI's `parameters` text of this request's image of `width` × `height` (the size
    /// actually rendered), as PNGs carry it and the tools that read them parse it back: the prompt,
    /// `Negative prompt: …`, then the settings line. The one writer of that text, for `farm render` and the
    /// workers alike; image `index` of a batch has seed `seed + index`. A VAE follows the model (`VAE: name`) and
    /// a refiner comes last (`Refiner: name, Refiner switch at: 0.8`), where the web UI writes them; all three
    /// are named as `modelName` names the model.
    ///
    /// LoRAs named outside the prompt are written as `<lora:NAME:W>` tags after it (so the web UI re-renders the
    /// image with them); `hashes` (the files' short hashes, computed by whoever holds the files) become
    /// `Lora hashes: "name: hash, …"` and `TI hashes: "name: hash, …"` as the web UI writes them.
    ///
    /// Variation seeds write `Variation seed` (image i's: subseed + i), `Variation seed strength` and `Seed resize from`;
    /// hires fix writes `Denoising strength` (its pass's) and `Hires upscale` (or `Hires resize`), `Hires steps`,
    /// `Hires upscaler`, and `Size` is then the first pass's, as in the web UI. Token merging writes the web UI's
    /// `Token merging ratio`; DeepCache writes `DeepCache interval` and `DeepCache branch`.
    public func parametersText(width: Int, height: Int, index: Int = 0, hashes: AddOnHashes = AddOnHashes()) -> String {
        var lines = [prompt + loras.map { " <lora:\(Self.loraName($0.name)):\($0.weight)>" }.joined()]
        if !negativePrompt.isEmpty { lines.append("Negative prompt: \(negativePrompt)") }
        let samplerText = (try? samplerName.webUIName) ?? sampler
        var settings =
            "Steps: \(steps), Sampler: \(samplerText), CFG scale: \(cfgScale), Seed: \(seed &+ UInt64(index)), Size: \(width)x\(height), Model: \(modelName)"
        if let vae { settings += ", VAE: \(Self.shortName(vae))" }
        settings += variationText(index: index)
        if effectiveClipSkip > 1 { settings += ", Clip skip: \(effectiveClipSkip)" }
        if initImage != nil && outpaint == nil { settings += ", Denoising strength: \(effectiveStrength)" }
        if let hires { settings += ", Denoising strength: \(hires.effectiveDenoise)" }
        if mask != nil { settings += ", Mask blur: \(Int(effectiveMaskBlur))" }
        if rng == .philox { settings += ", RNG: NV" }
        settings += hiresText()
        if let ratio = tokenMergingRatio, ratio > 0 { settings += ", Token merging ratio: \(ratio)" }
        if let interval = deepCacheInterval, interval > 1 {
            settings += ", DeepCache interval: \(interval), DeepCache branch: \(deepCacheBranch ?? 0)"
        }
        if !hashes.loras.isEmpty { settings += ", Lora hashes: " + AddOnHashes.quoted(hashes.loras) }
        if !hashes.embeddings.isEmpty { settings += ", TI hashes: " + AddOnHashes.quoted(hashes.embeddings) }
        if let refiner { settings += ", Refiner: \(Self.shortName(refiner)), Refiner switch at: \(effectiveRefinerSwitch)" }
        lines.append(settings)
        return lines.joined(separator: "\n")
    }

    /// The model's name as the text shows it: a path's last component without its `.safetensors`/`.ckpt`
    /// extension (`farm render --model ~/models/sd15.safetensors` → `sd15`), a name as it is.
    public var modelName: String { Self.shortName(model) }

    /// A LoRA's name as a tag writes it: a path's file name without its extension, a name as it is.
    public static func loraName(_ reference: String) -> String {
        var name = shortName(reference)
        for suffix in [".pt", ".bin"] where name.lowercased().hasSuffix(suffix) && name.count > suffix.count { name.removeLast(suffix.count) }
        return name
    }

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

/// The short hashes of the LoRA and embedding files a render used, for the `parameters` text (the web UI's
/// `Lora hashes` and `TI hashes`: the first 12 hex digits of a SHA-256).
public struct AddOnHashes: Equatable, Sendable {
    /// One file's name (as the prompt named it) and short hash.
    public struct Entry: Equatable, Sendable {
        /// The name.
        public var name: String
        /// The first 12 hex digits of its SHA-256.
        public var hash: String

        /// Makes an entry.
        public init(name: String, hash: String) {
            self.name = name
            self.hash = hash
        }
    }

    /// The LoRAs, in the order they were applied.
    public var loras: [Entry]
    /// The embeddings the prompts used.
    public var embeddings: [Entry]

    /// Hashes of LoRAs and embeddings (default: none).
    public init(loras: [Entry] = [], embeddings: [Entry] = []) {
        self.loras = loras
        self.embeddings = embeddings
    }

    /// `"name: hash, name: hash"` quoted as the web UI quotes a value holding colons or commas (`json.dumps`); the
    /// names lose their colons and commas, as the web UI's do.
    static func quoted(_ entries: [Entry]) -> String {
        let body = entries.map { entry in
            String(entry.name.filter { $0 != ":" && $0 != "," }) + ": " + entry.hash
        }.joined(separator: ", ")
        var escaped = ""
        for character in body {
            switch character {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            default: escaped.append(character)
            }
        }
        return "\"" + escaped + "\""
    }
}
