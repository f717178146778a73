import Foundation

/// A model in the farm's model store: a row of `farm models list --json` and `GET /v1/models`.
public struct ModelRecord: Codable, Sendable, Equatable {
    /// The name tasks give it (`model: NAME` in a spec); unique in the store.
    public var name: String
    /// What it is: `checkpoint`, `vae`, `lora`, `embedding`, `controlnet` or `upscaler`.
    public var kind: String
    /// Its size in bytes.
    public var size: Int64
    /// SHA-256 (lowercase hex) of its bytes: its identity and the file name workers cache it under.
    public var sha256: String
    /// When it was added (PostgreSQL's text form).
    public var added: String
    /// Workers that announced holding it, sorted.
    public var holders: [String]
    /// Whether a sidecar config (`<name>.config.json`) was stored with it; workers fetch it with the bytes.
    public var hasConfig: Bool

    enum CodingKeys: String, CodingKey {
        case name, kind, size, sha256, added, holders
        case hasConfig = "has_config"
    }

    /// Makes a record.
    public init(name: String, kind: String, size: Int64, sha256: String, added: String, holders: [String], hasConfig: Bool = false) {
        self.name = name
        self.kind = kind
        self.size = size
        self.sha256 = sha256
        self.added = added
        self.holders = holders
        self.hasConfig = hasConfig
    }

    /// The HTTP header that carries a model's sidecar config (base64 of its bytes) with an upload and with the
    /// model's bytes to a worker, so that the two travel together.
    public static let configHeader = "X-Model-Config"

    /// The sidecar a model file at `url` has: `<file without extension>.config.json` beside it, as the engine reads.
    public static func sidecar(of url: URL) -> URL { url.deletingPathExtension().appendingPathExtension("config.json") }

    /// The kinds a model may have.
    public static let kinds = ["checkpoint", "vae", "lora", "embedding", "controlnet", "upscaler"]

    /// The kind a file's name suggests (`checkpoint` unless the name says otherwise), for `farm models add`
    /// without `--kind`.
    public static func guessKind(fileName: String) -> String {
        let lower = fileName.lowercased()
        if lower.hasSuffix(".pt") || lower.hasSuffix(".bin") { return "embedding" }
        for kind in ["vae", "lora", "controlnet", "upscaler"] where lower.contains(kind) { return kind }
        if lower.contains("esrgan") || lower.contains("upscale") { return "upscaler" }
        return "checkpoint"
    }
}
