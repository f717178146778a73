import Foundation
import StableDiffusion

/// Where a render finds LoRAs and textual-inversion embeddings by name: `farm render`'s and `farm worker`'s
/// `--lora-dir` and `--embeddings-dir` (the web UI's flag names).
public struct AddOnFolders: Sendable, Equatable {
    /// The LoRA folder (files found by stem, subfolders included); nil: none.
    public var loras: URL?
    /// The embeddings folder; nil: none.
    public var embeddings: URL?

    /// Folders for a render.
    public init(loras: URL? = nil, embeddings: URL? = nil) {
        self.loras = loras
        self.embeddings = embeddings
    }

    /// The LoRA names the folder offers (file stems, sorted, each once), as a worker announces them.
    public var loraNames: [String] {
        guard let loras else { return [] }
        return Array(Set(AddOnFiles.catalog(loras).map { $0.deletingPathExtension().lastPathComponent })).sorted()
    }

    /// The LoRAs `request` uses: its prompt's `<lora:NAME:W>` tags, then its `loras`, each found by name in the LoRA
    /// folder. With `allowPaths` (`farm render --lora PATH:W`) an entry of `loras` that names an existing file is that
    /// file; without it (a worker) a name that climbs out of the folder (`..`) is refused. A name in `files` (a worker's
    /// stored LoRAs fetched into its cache) is that file, whatever the folder holds.
    public func loras(for request: GenerationRequest, allowPaths: Bool, files: [String: URL] = [:]) throws(GenerationError) -> [ResolvedLoRA] {
        let tags: [LoRATag]
        do { tags = try ComposablePrompt.extractingLoRAs(request.prompt).loras } catch { throw GenerationError("prompt: \(error)") }
        let wanted =
            tags.map { (name: $0.name, weight: $0.weight, textWeight: $0.textWeight, fromTag: true) }
            + request.loras.map { (name: $0.name, weight: Float($0.weight), textWeight: Float?.none, fromTag: false) }
        return try wanted.map { entry throws(GenerationError) in
            if allowPaths && !entry.fromTag && FileManager.default.fileExists(atPath: entry.name) {
                let url = URL(fileURLWithPath: entry.name)
                return ResolvedLoRA(name: GenerationRequest.loraName(entry.name), url: url, weight: entry.weight, textWeight: entry.textWeight)
            }
            if let url = files[entry.name] {
                return ResolvedLoRA(name: entry.name, url: url, weight: entry.weight, textWeight: entry.textWeight)
            }
            if !allowPaths && entry.name.split(separator: "/").contains("..") {
                throw GenerationError("LoRA \"\(entry.name)\": a name may not climb out of the LoRA folder")
            }
            do {
                let url = try AddOnFiles.find(entry.name, in: loras.map { [$0] } ?? [], what: "LoRA")
                return ResolvedLoRA(name: entry.name, url: url, weight: entry.weight, textWeight: entry.textWeight)
            } catch let error as AddOnFileError {
                throw GenerationError(error.message)
            } catch {
                throw GenerationError("\(error)")
            }
        }
    }
}

/// One LoRA a render applies, found: the name the request gave, its file and weights. Hashable, so a worker's
/// pipeline cache can key on the list.
public struct ResolvedLoRA: Hashable, Sendable {
    /// The name the prompt or request gave (the `Lora hashes` entry's name).
    public var name: String
    /// The file.
    public var url: URL
    /// The UNet's weight.
    public var weight: Float
    /// The text encoders' weight; nil: `weight`.
    public var textWeight: Float?

    /// Makes a resolved LoRA.
    public init(name: String, url: URL, weight: Float, textWeight: Float? = nil) {
        self.name = name
        self.url = url
        self.weight = weight
        self.textWeight = textWeight
    }

    /// `weights` with `loras` patched in (unchanged when there are none); a bad file is a `GenerationError` naming it.
    public static func patch(_ weights: ModelWeights, with loras: [ResolvedLoRA]) throws(GenerationError) -> ModelWeights {
        guard !loras.isEmpty else { return weights }
        do {
            let files = try loras.map { lora throws(AddOnFileError) in
                WeightedLoRA(file: try LoRAFile.load(lora.url), weight: lora.weight, textWeight: lora.textWeight)
            }
            return try weights.applying(files).weights
        } catch {
            throw GenerationError(error.description)
        }
    }
}
