import Foundation

/// SHA-256s of the model-store files a task's add-ons name, set by the model store when the job is queued (their only
/// writer, as for `model_sha256`): a worker that lacks one fetches it into its cache and uses it under the name the
/// task gives it, whatever its own folders hold under that name.
public struct StoredAddOns: Codable, Equatable, Sendable {
    /// Stored LoRAs by the name the task gives them (in `loras` or a prompt's `<lora:NAME:W>` tag).
    public var loras: [String: String]?
    /// The stored VAE's, when `vae` names one.
    public var vae: String?
    /// The stored upscaler's, when `upscaler` names one.
    public var upscaler: String?

    /// Makes a record; nil when it would hold nothing, so that a task without stored add-ons carries no field.
    public init?(loras: [String: String] = [:], vae: String? = nil, upscaler: String? = nil) {
        guard !loras.isEmpty || vae != nil || upscaler != nil else { return nil }
        self.loras = loras.isEmpty ? nil : loras
        self.vae = vae
        self.upscaler = upscaler
    }

    /// Whether every hash is a SHA-256 (64 lowercase hex digits).
    var isWellFormed: Bool {
        ((loras ?? [:]).values + [vae, upscaler].compactMap { $0 }).allSatisfy(TaskParameters.isStoredImageName)
    }
}

extension TaskParameters {
    /// A prompt's LoRA tag, its name captured: matched case-insensitively here and by the claim's SQL, which must
    /// agree on what a task needs (the syntax is the same in ICU's and PostgreSQL's regular expressions).
    public static let loraTagPattern = "<(?:lora|lyco):([^:>]+)"

    /// The LoRA names a task uses: its prompt's `<lora:NAME:…>` (or `<lyco:…>`) tags, as the claim reads them, and
    /// its `loras`.
    public var loraNames: [String] {
        let pattern = try? NSRegularExpression(pattern: Self.loraTagPattern, options: [.caseInsensitive])
        let text = prompt as NSString
        let tags = (pattern?.matches(in: prompt, range: NSRange(location: 0, length: text.length)) ?? []).map {
            text.substring(with: $0.range(at: 1))
        }
        return tags + (loras ?? []).map(\.name)
    }

    /// Throws when `stored_add_ons` holds a hash that is not a SHA-256.
    func validateStoredAddOns() throws(ValidationFailure) {
        if let storedAddOns, !storedAddOns.isWellFormed {
            throw ValidationFailure(field: "stored_add_ons", message: "holds a hash that is not 64 lowercase hex digits; the model store sets it")
        }
    }
}
