import Foundation
import Tensors

/// Reading LoRA and embedding files and finding them by name in their folders.
public enum AddOnFiles {
    /// File extensions tried, in order, when a name is looked up in a folder.
    public static let extensions = ["safetensors", "pt", "ckpt", "bin"]

    /// Every tensor of a `.safetensors` file, or of a PyTorch file (`.pt`, `.ckpt`, `.bin`) through the restricted
    /// unpickler (nested dicts flattened with dots); any failure is an `AddOnFileError` naming the file.
    static func tensors(_ url: URL, what: String) throws(AddOnFileError) -> [String: Tensor] {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw AddOnFileError(.unreadable, file: path, "no such \(what) file")
        }
        do {
            if url.pathExtension.lowercased() == "safetensors" { return try SafeTensorsFile(url: url).allTensors() }
            return try TorchCheckpoint.load(url)
        } catch let error as WeightsError {
            throw AddOnFileError(.unreadable, file: path, "not a readable \(what) file: \(error.message)")
        } catch let error as CheckpointError {
            throw AddOnFileError(.unreadable, file: path, "not a readable \(what) file: \(error.message)")
        } catch {
            throw AddOnFileError(.unreadable, file: path, "not a readable \(what) file: \(error)")
        }
    }

    /// The file named `name` (its stem, or a path below the folder without extension) in `folder` or a subfolder, as
    /// the web UI finds LoRAs and embeddings; throws `unknownName` listing what the folder holds.
    public static func find(_ name: String, in folders: [URL], what: String) throws(AddOnFileError) -> URL {
        for folder in folders {
            for ext in extensions {
                let direct = folder.appendingPathComponent(name).appendingPathExtension(ext)
                if FileManager.default.fileExists(atPath: direct.path) { return direct }
            }
            if let found = catalog(folder).first(where: { $0.deletingPathExtension().lastPathComponent == name }) { return found }
        }
        let known = folders.flatMap(catalog).map { $0.deletingPathExtension().lastPathComponent }
        let listing = known.isEmpty ? "the folder holds none" : "known: " + known.sorted().prefix(12).joined(separator: ", ")
        let place =
            folders.isEmpty ? "no folder was given (--\(what == "LoRA" ? "lora" : "embeddings")-dir)" : folders.map(\.path).joined(separator: ", ")
        throw AddOnFileError(.unknownName, file: name, "no \(what) named \"\(name)\" in \(place); \(listing)")
    }

    /// The add-on files in `folder` and its subfolders, sorted by path.
    public static func catalog(_ folder: URL) -> [URL] {
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return [] }
        var found: [URL] = []
        for case let url as URL in walker where extensions.contains(url.pathExtension.lowercased()) { found.append(url) }
        return found.sorted { $0.path < $1.path }
    }
}
