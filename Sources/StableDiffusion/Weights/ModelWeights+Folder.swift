import Foundation
import Tensors

/// diffusers folders (`model_index.json` with `unet/`, `vae/`, `text_encoder/`, and for SDXL `text_encoder_2/`,
/// `tokenizer_2/`; the refiner has only the second encoder), each component's weights as one safetensors file, an
/// fp16 variant, or a sharded index.
extension ModelWeights {
    static func readJSON<T: Decodable>(_ type: T.Type, _ url: URL) throws -> T {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw WeightsError(url.path, "cannot read: \(error.localizedDescription)") }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw WeightsError(url.path, "is not a valid config: \(error)")
        }
    }

    /// Reads a component's weights: `<stem>.safetensors` (or the fp16 variant), or a sharded index.
    static func componentWeights(_ folder: URL, stem: String, preferFP16: Bool) throws -> [String: Tensor] {
        let manager = FileManager.default
        var candidates = ["\(stem).safetensors", "\(stem).fp16.safetensors"]
        if preferFP16 { candidates.reverse() }
        for name in candidates where manager.fileExists(atPath: folder.appendingPathComponent(name).path) {
            return try SafeTensorsFile(url: folder.appendingPathComponent(name)).allTensors()
        }
        let index = folder.appendingPathComponent("\(stem).safetensors.index.json")
        if manager.fileExists(atPath: index.path) {
            struct Index: Decodable {
                var weightMap: [String: String]
                enum CodingKeys: String, CodingKey { case weightMap = "weight_map" }
            }
            var result: [String: Tensor] = [:]
            for shard in Set(try readJSON(Index.self, index).weightMap.values).sorted() {
                guard !shard.contains("/") else { throw WeightsError(index.path, "shard \"\(shard)\" must be a file in the same folder") }
                for (name, tensor) in try SafeTensorsFile(url: folder.appendingPathComponent(shard)).allTensors() {
                    result[name] = tensor
                }
            }
            return result
        }
        throw WeightsError(folder.path, "no \(stem).safetensors (or fp16 variant); .bin weights are not read, convert them to safetensors")
    }

    /// The pipeline-level settings of `model_index.json` the engine uses.
    struct ModelIndex: Decodable {
        /// SDXL: an empty negative prompt is all zeros (base models), or encoded like any text (the refiner).
        var forceZerosForEmptyPrompt: Bool?
        enum CodingKeys: String, CodingKey { case forceZerosForEmptyPrompt = "force_zeros_for_empty_prompt" }
    }

    static func loadDiffusersFolder(_ folder: URL, options: Options) throws -> ModelWeights {
        let index = folder.appendingPathComponent("model_index.json")
        guard FileManager.default.fileExists(atPath: index.path) else {
            throw WeightsError(folder.path, "not a diffusers folder: model_index.json is missing")
        }
        let settings = try readJSON(ModelIndex.self, index)
        let unetFolder = folder.appendingPathComponent("unet")
        let unetConfig = try readJSON(UNetConfig.self, unetFolder.appendingPathComponent("config.json"))
        try unetConfig.validate(path: unetFolder.path)
        let vaeFolder = folder.appendingPathComponent("vae")
        let first = try textEncoder(folder, "text_encoder", tokenizer: "tokenizer", options: options)
        let second = try textEncoder(folder, "text_encoder_2", tokenizer: "tokenizer_2", options: options)
        guard let main = first ?? second else { throw WeightsError(folder.path, "no text_encoder (or text_encoder_2) folder") }
        let schedulerFile = folder.appendingPathComponent("scheduler/scheduler_config.json")
        let scheduler =
            FileManager.default.fileExists(atPath: schedulerFile.path)
            ? try readJSON(SchedulerConfig.self, schedulerFile) : SchedulerConfig()
        let family: ModelFamily
        if unetConfig.isXL {
            family = first == nil ? .sdxlRefiner : .sdxl
        } else {
            guard second == nil else { throw WeightsError(folder.path, "a second text encoder needs an SDXL UNet (addition_embed_type text_time)") }
            family = main.config.hiddenAct == "gelu" ? .sd2 : .sd1
        }
        var model = ModelWeights(
            family: family, unetConfig: unetConfig,
            unet: try componentWeights(unetFolder, stem: "diffusion_pytorch_model", preferFP16: options.preferFP16Variant),
            vaeConfig: try readJSON(VAEConfig.self, vaeFolder.appendingPathComponent("config.json")),
            vae: try componentWeights(vaeFolder, stem: "diffusion_pytorch_model", preferFP16: options.preferFP16Variant),
            textEncoderConfig: main.config, textEncoder: main.weights, schedulerConfig: scheduler, padTokenID: main.padTokenID)
        if first != nil { model.textEncoder2 = second }
        model.forceZerosForEmptyPrompt = settings.forceZerosForEmptyPrompt ?? (family == .sdxl)
        return model
    }

    /// The text encoder in `folder/name` with the pad id of `folder/tokenizer`; nil when the folder has none.
    static func textEncoder(_ folder: URL, _ name: String, tokenizer: String, options: Options) throws -> TextEncoderWeights? {
        let textFolder = folder.appendingPathComponent(name)
        let configFile = textFolder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configFile.path) else { return nil }
        let config = try readJSON(TextEncoderConfig.self, configFile)
        var weights: [String: Tensor] = [:]
        for (key, tensor) in try componentWeights(textFolder, stem: "model", preferFP16: options.preferFP16Variant) {
            if let mapped = CheckpointKeys.clipName(key) { weights[mapped] = tensor }
        }
        let padFile = folder.appendingPathComponent("\(tokenizer)/tokenizer_config.json")
        return TextEncoderWeights(
            config: config, weights: weights, padTokenID: try padToken(padFile, default: config.hiddenAct == "gelu" ? 0 : 49407))
    }

    /// The pad id from a tokenizer config (read as the tokenizer reads it): `!` is 0, the end token 49407;
    /// `fallback` when there is no tokenizer config.
    static func padToken(_ url: URL, default fallback: Int) throws -> Int {
        guard FileManager.default.fileExists(atPath: url.path) else { return fallback }
        do { return try PaddingStyle(tokenizerConfig: Data(contentsOf: url)).padTokenID } catch let error as CLIPTokenizerError {
            throw WeightsError(url.path, error.description)
        }
    }
}
