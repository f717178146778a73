import Foundation
import Tensors

/// What a weights file or folder holds, read from its safetensors headers and config files without loading a
/// tensor: whether it is a whole model, a VAE or a ControlNet, which UNet class it has, and the bytes its weights
/// take once loaded. Workers index their models folder and size their pixel limit with it.
public struct WeightsSummary: Equatable, Sendable {
    /// What the weights are.
    public enum Kind: String, Sendable {
        /// A whole model (UNet, VAE, text encoders): a diffusers folder, a single-file `.safetensors` or a `.ckpt`.
        case model
        /// A VAE alone: a diffusers `vae` folder (`AutoencoderKL`), or a `.safetensors`, `.ckpt` or `.pt` with only VAE
        /// weights.
        case vae
        /// A diffusers ControlNet folder (`ControlNetModel`).
        case controlNet
    }

    /// What the weights are.
    public var kind: Kind
    /// The UNet's class, for models; nil where there is no UNet.
    public var architecture: MemoryEstimate.Architecture?
    /// Bytes the weights take once loaded: fp16 and bf16 stay resident as stored (2 bytes per parameter), every
    /// other type as Float32 (4), counted from the safetensors headers (EMA copies, position ids and OpenCLIP's
    /// `logit_scale`, which the loader skips, left out). A `.ckpt`'s tensors are not read: its file size stands in
    /// (halves stay halves, float32 stays float32; an upper bound, as such files often carry an EMA copy too).
    public var loadedBytes: Int

    /// Makes a summary.
    public init(kind: Kind, architecture: MemoryEstimate.Architecture?, loadedBytes: Int) {
        self.kind = kind
        self.architecture = architecture
        self.loadedBytes = loadedBytes
    }

    /// Summarises `url` (an entry of a models folder); nil when it is none of the kinds (another file, a folder
    /// without a diffusers config). Throws when a safetensors header or config that decides the answer is unreadable.
    public static func inspect(_ url: URL) throws -> WeightsSummary? {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else { return nil }
        if isFolder.boolValue {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("model_index.json").path) {
                return WeightsSummary(kind: .model, architecture: try folderArchitecture(url), loadedBytes: try folderBytes(url))
            }
            let config = url.appendingPathComponent("config.json")
            guard let text = (try? Data(contentsOf: config)).map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
            if text.contains("ControlNetModel") { return WeightsSummary(kind: .controlNet, architecture: nil, loadedBytes: try componentBytes(url)) }
            if text.contains("AutoencoderKL") { return WeightsSummary(kind: .vae, architecture: nil, loadedBytes: try componentBytes(url)) }
            return nil
        }
        let fileExtension = url.pathExtension.lowercased()
        switch fileExtension {
        case "safetensors":
            let names = Set(try SafeTensorsFile(url: url).entries.keys)
            let kind: Kind = isVAE(names) ? .vae : .model
            return WeightsSummary(kind: kind, architecture: kind == .model ? singleFileArchitecture(names) : nil, loadedBytes: try fileBytes(url))
        case "ckpt", "pt", "pth":
            // The pickle's keys only (no tensor is read); `.pt`/`.pth` files count only as VAEs, as the web UIs name them.
            let names = Set(try TorchCheckpoint.read(url, verifyChecksums: false, keep: { _ in false }).skippedKeys)
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int ?? 0
            if isVAE(names) { return WeightsSummary(kind: .vae, architecture: nil, loadedBytes: size) }
            return fileExtension == "ckpt" ? WeightsSummary(kind: .model, architecture: singleFileArchitecture(names), loadedBytes: size) : nil
        default:
            return nil
        }
    }

    /// Whether a single file's tensor names are a VAE's alone: decoder weights (diffusers' or LDM's names, bare or
    /// under the checkpoint's VAE prefix) and no UNet.
    static func isVAE(_ names: Set<String>) -> Bool {
        !names.contains { $0.hasPrefix(CheckpointKeys.unetPrefix) }
            && names.contains { $0.hasPrefix("decoder.") || $0.hasPrefix(CheckpointKeys.vaePrefix + "decoder.") }
    }

    /// Bytes a safetensors file's tensors take once loaded (halves 2 an element, other types 4), without EMA copies,
    /// position ids and OpenCLIP's `logit_scale`.
    static func fileBytes(_ url: URL) throws -> Int {
        try SafeTensorsFile(url: url).entries.reduce(0) { total, entry in
            let unused = entry.key.hasPrefix("model_ema.") || entry.key.hasSuffix("position_ids") || entry.key.hasSuffix("logit_scale")
            guard !unused else { return total }
            return total + (entry.value.dtype?.resident.byteCount ?? 4) * entry.value.shape.reduce(1, *)
        }
    }

    /// Loaded bytes of one diffusers component folder: its `.safetensors` files (every shard), an `.fp16.` variant
    /// only where the full-precision file is missing (the loader reads one of the two).
    static func componentBytes(_ folder: URL) throws -> Int {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let weights = files.filter { $0.lowercased().hasSuffix(".safetensors") }
        return try weights.reduce(0) { total, name in
            if name.contains(".fp16."), weights.contains(name.replacingOccurrences(of: ".fp16.", with: ".")) { return total }
            return total + (try fileBytes(folder.appendingPathComponent(name)))
        }
    }

    /// Loaded bytes of a diffusers model folder's networks (UNet, VAE and each text encoder).
    static func folderBytes(_ folder: URL) throws -> Int {
        try ["unet", "vae", "text_encoder", "text_encoder_2"].reduce(0) { $0 + (try componentBytes(folder.appendingPathComponent($1))) }
    }

    /// The UNet class of a diffusers folder: SDXL-class when the UNet takes SDXL's extra embeddings
    /// (`addition_embed_type: text_time`, base and refiner alike) or the folder has a second text encoder.
    static func folderArchitecture(_ folder: URL) throws -> MemoryEstimate.Architecture {
        let unet = try? ModelWeights.readJSON(UNetConfig.self, folder.appendingPathComponent("unet/config.json"))
        let secondEncoder = FileManager.default.fileExists(atPath: folder.appendingPathComponent("text_encoder_2").path)
        return unet?.isXL == true || secondEncoder ? .sdxl : .sd
    }

    /// The UNet class of a single-file checkpoint from its tensor names: SDXL's UNets (base and refiner) have
    /// the `label_emb` of their size and crop embeddings, SD 1.x/2.x's do not.
    static func singleFileArchitecture(_ names: Set<String>) -> MemoryEstimate.Architecture {
        names.contains { $0.hasPrefix(CheckpointKeys.unetPrefix + "label_emb.") || $0.hasPrefix("conditioner.embedders.") } ? .sdxl : .sd
    }
}
