import Foundation
import Tensors

/// TAESD files: a diffusers `AutoencoderTiny` folder (`config.json` + `diffusion_pytorch_model.safetensors`), or
/// madebyollin's single files (`taesd_decoder.safetensors`/`.pth` and `taesd_encoder.…`, `taesdxl_…` for SDXL), whose
/// names are the diffusers ones without `encoder.layers.`, and for the decoder one index higher (its first layer,
/// the latent clamp, has no weights; diffusers applies it in `forward`).
extension TinyAutoencoder {
    /// The file-name stems a TAESD for SD 1.x/2.x and for SDXL go by, in the order they are looked for.
    public static func stems(xl: Bool) -> [String] { xl ? ["taesdxl", "taesd_xl"] : ["taesd"] }

    /// Loads a TAESD from a diffusers folder, a folder holding the single files, or one single file (a decoder, an
    /// encoder, or diffusers-named weights). Throws a `WeightsError` naming the path when none of them is there.
    public static func load(_ url: URL) throws -> TinyAutoencoder {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw WeightsError(url.path, "no such TAESD file or folder")
        }
        guard isDirectory.boolValue else { return try TinyAutoencoder(weights: singleFile(url), source: url.path) }
        let config = url.appendingPathComponent("config.json")
        if FileManager.default.fileExists(atPath: config.path) {
            let settings = try ModelWeights.readJSON(TinyAutoencoderConfig.self, config)
            let weights = try ModelWeights.componentWeights(url, stem: "diffusion_pytorch_model", preferFP16: false)
            return try TinyAutoencoder(config: settings, weights: weights, source: url.path)
        }
        let files = singleFiles(in: url)
        guard !files.isEmpty else {
            throw WeightsError(
                url.path,
                "holds neither a diffusers AutoencoderTiny (config.json + diffusion_pytorch_model.safetensors) nor taesd_decoder/taesd_encoder files")
        }
        var weights: [String: Tensor] = [:]
        for file in files { weights.merge(try singleFile(file)) { first, _ in first } }
        return try TinyAutoencoder(weights: weights, source: url.path)
    }

    /// Whether `url` looks like a TAESD rather than a full VAE: a folder whose config names `AutoencoderTiny` or that
    /// holds TAESD single files, or a file named like one (`taesd…`). Reads no weights.
    public static func isTinyAutoencoder(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return false }
        guard isDirectory.boolValue else { return url.lastPathComponent.lowercased().hasPrefix("taesd") }
        if let data = try? Data(contentsOf: url.appendingPathComponent("config.json")),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        {
            return object["_class_name"] as? String == "AutoencoderTiny"
        }
        return !singleFiles(in: url).isEmpty
    }

    /// The TAESD that `--vae taesd` and live previews use for a model at `model`: a `taesd` (SD 1.x/2.x) or `taesdxl`
    /// folder or `<stem>_decoder` file beside the model, or in `folders`, first found; nil when there is none.
    public static func find(forModel model: URL?, xl: Bool, folders: [URL] = []) -> URL? {
        let places = (model.map { [$0.deletingLastPathComponent()] } ?? []) + folders
        let manager = FileManager.default
        for place in places {
            for stem in stems(xl: xl) {
                let folder = place.appendingPathComponent(stem)
                if isTinyAutoencoder(folder) { return folder }
                for ext in ["safetensors", "pth"] {
                    let file = place.appendingPathComponent("\(stem)_decoder.\(ext)")
                    if manager.fileExists(atPath: file.path) { return file }
                }
            }
        }
        return nil
    }

    /// The single files in a folder: `*_decoder` and `*_encoder` `.safetensors` (preferred) or `.pth`.
    static func singleFiles(in folder: URL) -> [URL] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return [] }
        return ["decoder", "encoder"].compactMap { part in
            for ext in ["safetensors", "pth"] {
                if let name = names.sorted().first(where: { $0.lowercased().hasPrefix("taesd") && $0.lowercased().hasSuffix("_\(part).\(ext)") }) {
                    return folder.appendingPathComponent(name)
                }
            }
            return nil
        }
    }

    /// A single file's tensors under diffusers' names: kept as they are when already diffusers-named, else named by
    /// the file as a decoder (indices one lower) or an encoder.
    static func singleFile(_ url: URL) throws -> [String: Tensor] {
        let tensors: [String: Tensor]
        switch url.pathExtension.lowercased() {
        case "safetensors": tensors = try SafeTensorsFile(url: url).allTensors()
        case "pth", "pt", "ckpt": tensors = try TorchCheckpoint.load(url)
        default: throw WeightsError(url.path, "unknown TAESD format: expected a diffusers folder, .safetensors or .pth")
        }
        if tensors.keys.contains(where: { $0.hasPrefix("encoder.layers.") || $0.hasPrefix("decoder.layers.") }) { return tensors }
        let name = url.deletingPathExtension().lastPathComponent.lowercased()
        let isDecoder = name.hasSuffix("decoder")
        guard isDecoder || name.hasSuffix("encoder") else {
            throw WeightsError(
                url.path, "a TAESD single file must be named …_decoder or …_encoder (as taesd_decoder.safetensors) to say which half it is")
        }
        var renamed: [String: Tensor] = [:]
        for (key, tensor) in tensors {
            let parts = key.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, let index = Int(parts[0]), !isDecoder || index >= 1 else {
                throw WeightsError(url.path, "tensor \(key) is not a TAESD layer (N.weight or N.conv.K.weight)")
            }
            renamed["\(isDecoder ? "decoder" : "encoder").layers.\(isDecoder ? index - 1 : index).\(parts[1])"] = tensor
        }
        return renamed
    }
}
