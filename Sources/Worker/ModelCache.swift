import FarmModel
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The folder a worker keeps store models in (`--model-cache`): each as `<sha256>.safetensors` or `<sha256>.ckpt`
/// (the extension the engine loads by, sniffed from the bytes), downloads in progress as `<sha256>.partial`. A
/// file's modification time is its last use, so the least-recently-used order survives restarts; beyond the byte
/// budget (`--model-cache-gb`) the least recently used files go, never one in use. Files of the `--models` folder
/// are never here, so never evicted. A sidecar `<sha256>.config.json` (the engine's settings for a checkpoint that
/// needs them, fetched with it) is kept and removed with its model.
public final class ModelCache: @unchecked Sendable {
    /// The folder.
    public let folder: URL
    /// Bytes the cached models may take (nil: no limit).
    public let budgetBytes: Int64?
    private let lock = NSLock()
    /// Models in use by a render, with how many renders use each.
    private var inUse: [String: Int] = [:]

    /// Uses `folder` (made if missing) with a budget of `budgetBytes`.
    public init(folder: URL, budgetBytes: Int64?) throws {
        self.folder = folder
        self.budgetBytes = budgetBytes
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    /// The extensions a cached model may have.
    static let extensions = ["safetensors", "ckpt"]

    /// The cached models: hash, file, size and last use.
    func entries() -> [(hash: String, url: URL, size: Int64, used: Date)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.compactMap { name in
            let url = folder.appendingPathComponent(name)
            let hash = url.deletingPathExtension().lastPathComponent
            guard Self.extensions.contains(url.pathExtension), TaskParameters.isStoredImageName(hash),
                let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
            else { return nil }
            return (
                hash, url, (attributes[.size] as? NSNumber)?.int64Value ?? 0,
                attributes[.modificationDate] as? Date ?? .distantPast
            )
        }
    }

    /// SHA-256s of the models held, sorted: what the worker announces.
    public var hashes: [String] { entries().map(\.hash).sorted() }

    /// The file of `hash` if cached, its use noted now.
    func file(_ hash: String) -> URL? {
        guard let url = entries().first(where: { $0.hash == hash })?.url else { return nil }
        try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: url.path)
        return url
    }

    /// Where the download of `hash` goes.
    func partial(_ hash: String) -> URL { folder.appendingPathComponent(hash + ".partial") }

    /// Moves a verified download into place under the extension its bytes call for; returns the file.
    func install(_ hash: String) throws -> URL {
        let target = folder.appendingPathComponent(hash + "." + Self.fileExtension(of: partial(hash)))
        guard rename(partial(hash).path, target.path) == 0 else {
            throw RenderError(kind: .host, message: "cannot move the download of \(hash.prefix(12))… into place: \(String(cString: strerror(errno)))")
        }
        return target
    }

    /// Writes the sidecar config of `hash` from the base64 the coordinator sent (removing a stale one when it sent
    /// none), where the engine looks for it: beside the model, as `<sha256>.config.json`.
    func installSidecar(_ hash: String, base64: String?) throws {
        let url = folder.appendingPathComponent(hash + ".config.json")
        guard let base64 else {
            try? FileManager.default.removeItem(at: url)
            return
        }
        guard let data = Data(base64Encoded: base64) else {
            throw RenderError(kind: .host, message: "the coordinator sent the sidecar config of \(hash.prefix(12))… in a form that is not base64")
        }
        do { try data.write(to: url, options: .atomic) } catch {
            throw RenderError(
                kind: .host, message: "cannot write \(url.path): \((error as NSError).localizedDescription); check the cache's free space")
        }
    }

    /// `safetensors` for a file that starts as one (an 8-byte header length, then `{`), else `ckpt` (a PyTorch zip
    /// or pickle).
    static func fileExtension(of url: URL) -> String {
        guard let handle = try? FileHandle(forReadingFrom: url), let head = try? handle.read(upToCount: 9) else { return "ckpt" }
        try? handle.close()
        return head.count == 9 && head[head.startIndex + 8] == UInt8(ascii: "{") ? "safetensors" : "ckpt"
    }

    /// Marks `hash` in use (not evicted) until `release`.
    public func retain(_ hash: String) { lock.withLock { inUse[hash, default: 0] += 1 } }

    /// Ends a use of `hash`.
    public func release(_ hash: String) {
        lock.withLock {
            inUse[hash, default: 1] -= 1
            if inUse[hash] == 0 { inUse[hash] = nil }
        }
    }

    /// Deletes the least recently used models not in use until the cache fits its budget; returns the hashes removed.
    @discardableResult
    public func evict() -> [String] {
        guard let budgetBytes else { return [] }
        var entries = entries().sorted { $0.used < $1.used }
        var total = entries.reduce(Int64(0)) { $0 + $1.size }
        var removed: [String] = []
        let busy = lock.withLock { Set(inUse.keys) }
        while total > budgetBytes, let index = entries.firstIndex(where: { !busy.contains($0.hash) }) {
            let entry = entries.remove(at: index)
            try? FileManager.default.removeItem(at: entry.url)
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(entry.hash + ".config.json"))
            total -= entry.size
            removed.append(entry.hash)
        }
        return removed
    }
}
