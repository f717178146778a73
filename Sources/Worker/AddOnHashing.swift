import FarmModel
import Foundation
import StableDiffusion

/// The short hashes the web UI writes for LoRAs (`Lora hashes`) and embeddings (`TI hashes`): the first 12 hex
/// digits of a SHA-256. For a `.safetensors` LoRA the web UI hashes what follows the header (kohya's "addnet" hash,
/// so that editing metadata keeps it) unless the metadata carries `sshs_model_hash`; other LoRA files and every
/// embedding are hashed whole. Computed once per file (path, size and modification time), as the web UI caches them.
public enum AddOnHashing {
    private static let cache = HashCache()

    /// The short hash of a LoRA file, as the web UI's `Lora hashes` gives it; nil when the file cannot be read.
    public static func lora(_ url: URL) -> String? {
        cached(url, kind: "lora") {
            let data = try Data(contentsOf: url, options: .mappedIfSafe)
            guard url.pathExtension.lowercased() == "safetensors", data.count >= 8 else { return SHA256.hex(of: data) }
            let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            guard length >= 0, length <= data.count - 8 else { return SHA256.hex(of: data) }
            let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any]
            if let metadata = header?["__metadata__"] as? [String: Any], let hash = metadata["sshs_model_hash"] as? String, !hash.isEmpty {
                return hash
            }
            return SHA256.hex(of: data.subdata(in: (8 + length)..<data.count))
        }
    }

    /// The short hash of an embedding file, as the web UI's `TI hashes` gives it (the whole file's SHA-256).
    public static func embedding(_ url: URL) -> String? {
        cached(url, kind: "embedding") { SHA256.hex(of: try Data(contentsOf: url, options: .mappedIfSafe)) }
    }

    /// The `parameters` text's hashes for `loras` and the embeddings `pipeline` reads (files that cannot be read are
    /// left out, as the web UI leaves out files without a hash).
    public static func hashes(loras: [ResolvedLoRA], embeddings: PromptEmbeddings?) -> AddOnHashes {
        AddOnHashes(
            loras: loras.compactMap { file in lora(file.url).map { AddOnHashes.Entry(name: file.name, hash: $0) } },
            embeddings: (embeddings?.embeddings ?? []).compactMap { embedding in
                Self.embedding(embedding.url).map { AddOnHashes.Entry(name: embedding.name, hash: $0) }
            })
    }

    /// `compute`'s full hash cut to 12 digits, remembered per file version.
    private static func cached(_ url: URL, kind: String, compute: () throws -> String) -> String? {
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        let size = attributes?[.size] as? Int ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let key = "\(kind)|\(url.standardizedFileURL.path)|\(size)|\(modified)"
        if let known = cache[key] { return known }
        guard let full = try? compute() else { return nil }
        let short = String(full.prefix(12))
        cache[key] = short
        return short
    }
}

/// Short hashes by file version, behind a lock (renders on several threads hash at once).
private final class HashCache: @unchecked Sendable {
    private let lock = NSLock()
    private var hashes: [String: String] = [:]

    subscript(key: String) -> String? {
        get { lock.withLock { hashes[key] } }
        set { lock.withLock { hashes[key] = newValue } }
    }
}
