import Foundation
import StableDiffusion

/// The networks of a worker's models folder by name, each with what its files say of it (`WeightsSummary`):
/// whole models (diffusers folders, `.safetensors`, `.ckpt`, named by the file name without extension), VAEs
/// (diffusers `vae` folders with an `AutoencoderKL` config, `.safetensors`, `.ckpt` or `.pt` files with only VAE
/// weights) and ControlNets (diffusers folders with a `ControlNetModel` config). The bundled models are there unless the folder
/// has a model of the same name.
struct ModelsIndex {
    /// One network: where it is and what it holds.
    struct Entry {
        /// Its file or folder.
        var url: URL
        /// Its kind, UNet class and loaded size.
        var summary: WeightsSummary
    }

    /// Whole models by name.
    private(set) var models: [String: Entry] = [:]
    /// VAEs by name.
    private(set) var vaes: [String: Entry] = [:]
    /// ControlNets by name.
    private(set) var controlNets: [String: Entry] = [:]

    /// Indexes `folder` (nil: only the bundled models).
    init(folder: URL?) throws {
        for name in BundledModels.names {
            if let url = try? BundledModels.url(name), let summary = try? WeightsSummary.inspect(url) {
                models[name] = Entry(url: url, summary: summary)
            }
        }
        let entries = try folder.map { try FileManager.default.contentsOfDirectory(at: $0, includingPropertiesForKeys: nil) } ?? []
        for url in entries.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
            // TAESD files are the renderer's previews and `vae: taesd`, not models or VAEs a task names by file.
            guard !TinyAutoencoder.isTinyAutoencoder(url), let summary = Self.summary(url) else { continue }
            switch summary.kind {
            case .model: models[url.deletingPathExtension().lastPathComponent] = Entry(url: url, summary: summary)
            case .vae: vaes[url.deletingPathExtension().lastPathComponent] = Entry(url: url, summary: summary)
            case .controlNet: controlNets[url.lastPathComponent] = Entry(url: url, summary: summary)
            }
        }
    }

    /// What `url` holds; a `.safetensors` or `.ckpt` whose header cannot be read is still listed as a model (its
    /// load reports the problem), at twice its file size.
    static func summary(_ url: URL) -> WeightsSummary? {
        if let summary = try? WeightsSummary.inspect(url) { return summary }
        guard ["safetensors", "ckpt"].contains(url.pathExtension.lowercased()) else { return nil }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int ?? 0
        return WeightsSummary(kind: .model, architecture: nil, loadedBytes: 2 * size)
    }
}
