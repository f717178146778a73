import Foundation
import Tensors

/// Which text encoder (and so which model generation) a checkpoint carries.
public enum ModelFamily: String, Codable, Sendable {
    /// SD 1.x: OpenAI CLIP ViT-L/14, quick-GELU, pads prompts with the end token.
    case sd1
    /// SD 2.x: OpenCLIP ViT-H/14, GELU, penultimate layer, pads with `!` (id 0).
    case sd2
    /// SDXL base: CLIP ViT-L and OpenCLIP ViT-bigG side by side, pooled text and size conditioning.
    case sdxl
    /// SDXL refiner: OpenCLIP ViT-bigG alone, pooled text and aesthetic-score conditioning.
    case sdxlRefiner
}

/// One text encoder's weights with its settings and the pad id of its tokenizer.
public struct TextEncoderWeights {
    /// The encoder's settings.
    public var config: TextEncoderConfig
    /// Its weights (CLIP names without `text_model.`; `text_projection.weight` for CLIPTextModelWithProjection).
    public var weights: [String: Tensor]
    /// Token id that pads prompts to 77 (49407: the end token; 0: `!`).
    public var padTokenID: Int

    /// Wraps loaded weights.
    public init(config: TextEncoderConfig, weights: [String: Tensor], padTokenID: Int) {
        self.config = config
        self.weights = weights
        self.padTokenID = padTokenID
    }
}

/// A whole Stable Diffusion model as the engine runs it: typed configs and weights under diffusers' names, whatever
/// form the files came in. Weights stay as the files store them: float16 and bfloat16 resident as halves (the
/// products widen them a layer at a time), float32 as float32, so a model costs its file's size in memory.
public struct ModelWeights {
    /// SD 1.x or 2.x.
    public var family: ModelFamily
    /// The UNet's settings.
    public var unetConfig: UNetConfig
    /// The UNet's weights.
    public var unet: [String: Tensor]
    /// The VAE's settings.
    public var vaeConfig: VAEConfig
    /// The VAE's weights.
    public var vae: [String: Tensor]
    /// The text encoder's settings.
    public var textEncoderConfig: TextEncoderConfig
    /// The text encoder's weights (CLIP names without `text_model.`).
    public var textEncoder: [String: Tensor]
    /// Noise schedule and prediction type.
    public var schedulerConfig: SchedulerConfig
    /// Token id that pads prompts to 77 (49407 for SD 1.x, 0 for SD 2.x).
    public var padTokenID: Int
    /// SDXL base: the second text encoder (OpenCLIP ViT-bigG with its projection); the first is `textEncoder`. nil
    /// for SD 1.x/2.x and for the refiner, whose only encoder (the bigG one) is `textEncoder`.
    public var textEncoder2: TextEncoderWeights?
    /// SDXL: whether an empty negative prompt conditions on zeros (diffusers' `force_zeros_for_empty_prompt`: true
    /// for base models, false for the refiner) rather than on the encoded empty text.
    public var forceZerosForEmptyPrompt = false
    /// Keys of a single file that the engine does not use and did not read (EMA copies, scheduler
    /// buffers, the VAE's training loss, position ids), for a debug log.
    public var ignoredKeys: [String] = []

    /// True for inpainting UNets (latents + mask + masked-image latents = 9 channels).
    public var isInpainting: Bool { unetConfig.inChannels == 9 }

    /// Settings that checkpoints do not carry in their weights.
    public struct Options: Sendable {
        /// Forces v-prediction (SD 2.x 768-v models) or epsilon; nil: from config files.
        public var predictionType: String?
        /// Prefer `*.fp16.safetensors` files in diffusers folders when present. Off by default: a folder's plain
        /// file is the one diffusers loads without `variant="fp16"`, so images stay those of diffusers on the same
        /// folder. On, such a folder costs half the memory (its halves stay resident) for weights rounded to fp16.
        public var preferFP16Variant = false

        /// No overrides.
        public init(predictionType: String? = nil, preferFP16Variant: Bool = false) {
            self.predictionType = predictionType
            self.preferFP16Variant = preferFP16Variant
        }
    }

    /// Loads a diffusers folder, a single-file `.safetensors` or a `.ckpt`.
    public static func load(_ url: URL, options: Options = Options()) throws -> ModelWeights {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw WeightsError(url.path, "no such file or folder")
        }
        var model: ModelWeights
        if isDirectory.boolValue {
            model = try loadDiffusersFolder(url, options: options)
        } else {
            // Only the components' tensors are read: real downloads also carry an EMA copy of the
            // UNet, the training scheduler's buffers and more, in any dtype, which must not stop a load.
            let tensors: [String: Tensor]
            let ignored: [String]
            switch url.pathExtension.lowercased() {
            case "safetensors":
                let file = try SafeTensorsFile(url: url)
                tensors = try file.tensors(where: CheckpointKeys.isUsed)
                ignored = file.names.filter { !CheckpointKeys.isUsed($0) }
            case "ckpt", "pt", "pth":
                let contents = try TorchCheckpoint.read(url, keep: CheckpointKeys.isUsed)
                (tensors, ignored) = (contents.tensors, contents.skippedKeys.sorted())
            default:
                throw WeightsError(url.path, "unknown model format: expected a diffusers folder, .safetensors or .ckpt")
            }
            model = try fromSingleFile(tensors, path: url.path, sidecar: try SidecarConfig.load(for: url))
            model.ignoredKeys = ignored
        }
        if let prediction = options.predictionType { model.schedulerConfig.predictionType = prediction }
        if !isDirectory.boolValue && model.family == .sd2 && model.schedulerConfig.predictionType == "v_prediction" {
            model.unetConfig.sampleSize = 96
        }
        return model
    }

    // MARK: - single files (LDM layout)

    /// Splits an LDM state dict into components, maps names, and infers configs from shapes.
    public static func fromSingleFile(_ tensors: [String: Tensor], path: String, sidecar: SidecarConfig = SidecarConfig()) throws -> ModelWeights {
        func component(_ prefix: String) -> [String: Tensor] {
            var result: [String: Tensor] = [:]
            for (key, tensor) in tensors where key.hasPrefix(prefix) && CheckpointKeys.isUsed(key) {
                result[String(key.dropFirst(prefix.count))] = tensor
            }
            return result
        }
        let rawUNet = component(CheckpointKeys.unetPrefix)
        guard !rawUNet.isEmpty else {
            throw WeightsError(path, "no UNet weights (model.diffusion_model.*): not a Stable Diffusion checkpoint, or an unsupported layout")
        }
        let inputBlocks = Set(
            rawUNet.keys.compactMap { key -> Int? in
                guard key.hasPrefix("input_blocks.") else { return nil }
                return Int(key.dropFirst("input_blocks.".count).prefix { $0 != "." })
            })
        let downsamplers = inputBlocks.filter { index in rawUNet.keys.contains { $0.hasPrefix("input_blocks.\(index).0.op.") } }.sorted()
        guard let firstDown = downsamplers.first, firstDown >= 2 else {
            throw WeightsError(path, "cannot find the UNet's downsamplers (input_blocks.N.0.op)")
        }
        let layersPerBlock = firstDown - 1
        var unet: [String: Tensor] = [:]
        for (key, tensor) in rawUNet {
            if let name = CheckpointKeys.unetName(key, layersPerBlock: layersPerBlock) { unet[name] = tensor }
        }

        let family: ModelFamily
        var text: [String: Tensor] = [:]
        var textConfig = TextEncoderConfig()
        let openCLIP = component(CheckpointKeys.openCLIPPrefix)
        if !openCLIP.isEmpty {
            family = .sd2
            let layers = Set(
                openCLIP.keys.compactMap { key -> Int? in
                    guard key.hasPrefix("transformer.resblocks.") else { return nil }
                    return Int(key.dropFirst("transformer.resblocks.".count).prefix { $0 != "." })
                }
            ).count
            // SD 2.x conditions on the penultimate layer: keep all but the last, as diffusers does.
            textConfig.numHiddenLayers = max(1, layers - 1)
            text = CheckpointKeys.openCLIPTensors(openCLIP, layers: textConfig.numHiddenLayers)
            textConfig.hiddenAct = "gelu"
        } else {
            family = .sd1
            for (key, tensor) in component(CheckpointKeys.clipPrefix) {
                if let name = CheckpointKeys.clipName(key) { text[name] = tensor }
            }
            guard !text.isEmpty else { throw WeightsError(path, "no text encoder weights (cond_stage_model.*)") }
            textConfig.numHiddenLayers =
                Set(
                    text.keys.compactMap { key -> Int? in
                        guard key.hasPrefix("encoder.layers.") else { return nil }
                        return Int(key.dropFirst("encoder.layers.".count).prefix { $0 != "." })
                    }
                ).count
        }
        func shape(_ dictionary: [String: Tensor], _ key: String) throws -> [Int] {
            guard let tensor = dictionary[key] else { throw WeightsError(path, "missing tensor \(key)") }
            return tensor.shape
        }
        let token = try shape(text, "embeddings.token_embedding.weight")
        textConfig.vocabSize = token[0]
        textConfig.hiddenSize = token[1]
        textConfig.numAttentionHeads = max(1, token[1] / 64)
        textConfig.intermediateSize = try shape(text, "encoder.layers.0.mlp.fc1.weight")[0]
        textConfig.maxPositionEmbeddings = try shape(text, "embeddings.position_embedding.weight")[0]

        var unetConfig = UNetConfig()
        let levels = Set(
            unet.keys.compactMap { key -> Int? in
                guard key.hasPrefix("down_blocks.") else { return nil }
                return Int(key.dropFirst("down_blocks.".count).prefix { $0 != "." })
            }
        ).count
        unetConfig.layersPerBlock = layersPerBlock
        unetConfig.blockOutChannels = try (0..<levels).map { try shape(unet, "down_blocks.\($0).resnets.0.conv1.weight")[0] }
        unetConfig.downBlockTypes = (0..<levels).map { level in
            unet.keys.contains { $0.hasPrefix("down_blocks.\(level).attentions.") } ? "CrossAttnDownBlock2D" : "DownBlock2D"
        }
        unetConfig.upBlockTypes = (0..<levels).map { level in
            unet.keys.contains { $0.hasPrefix("up_blocks.\(level).attentions.") } ? "CrossAttnUpBlock2D" : "UpBlock2D"
        }
        let conv = try shape(unet, "conv_in.weight")
        unetConfig.inChannels = conv[1]
        unetConfig.outChannels = try shape(unet, "conv_out.weight")[0]
        if let attention = unet.keys.sorted().first(where: { $0.hasSuffix("attn2.to_k.weight") }) {
            unetConfig.crossAttentionDim = try shape(unet, attention)[1]
        }
        if let projection = unet.keys.sorted().first(where: { $0.hasSuffix("proj_in.weight") }) {
            unetConfig.useLinearProjection = try shape(unet, projection).count == 2
        }
        // Head counts are not in the weights: SD 1.x uses 8 heads, SD 2.x heads of width 64.
        unetConfig.attentionHeadDim = family == .sd1 ? .all(8) : .each(unetConfig.blockOutChannels.map { max(1, $0 / 64) })
        // The native size is not in the weights either: 512 × 512, but 768 × 768 for SD 2.x v-prediction
        // models (set in `load` once the prediction type is known), as diffusers' single-file loader infers.
        unetConfig.sampleSize = 64

        var vae: [String: Tensor] = [:]
        let rawVAE = component(CheckpointKeys.vaePrefix)
        let vaeLevels = Set(
            rawVAE.keys.compactMap { key -> Int? in
                guard key.hasPrefix("decoder.up.") else { return nil }
                return Int(key.dropFirst("decoder.up.".count).prefix { $0 != "." })
            }
        ).count
        for (key, tensor) in rawVAE {
            guard let name = CheckpointKeys.vaeName(key, levels: vaeLevels) else { continue }
            // LDM keeps the VAE attention projections as 1×1 convolutions; diffusers as linear layers.
            let isProjection = name.contains("mid_block.attentions.0.to_") && tensor.rank == 4
            vae[name] = isProjection ? tensor.reshaped([tensor.shape[0], tensor.shape[1]]) : tensor
        }
        var vaeConfig = VAEConfig()
        vaeConfig.blockOutChannels = try (0..<vaeLevels).map { try shape(vae, "encoder.down_blocks.\($0).resnets.0.conv1.weight")[0] }
        vaeConfig.layersPerBlock = vae.keys.filter { $0.hasPrefix("encoder.down_blocks.0.resnets.") && $0.hasSuffix(".conv1.weight") }.count
        vaeConfig.inChannels = try shape(vae, "encoder.conv_in.weight")[1]
        vaeConfig.outChannels = try shape(vae, "decoder.conv_out.weight")[0]
        vaeConfig.latentChannels = try shape(vae, "decoder.conv_in.weight")[1]
        vaeConfig.useQuantConv = vae["quant_conv.weight"] != nil
        vaeConfig.usePostQuantConv = vae["post_quant_conv.weight"] != nil

        var model = ModelWeights(
            family: family, unetConfig: unetConfig, unet: unet, vaeConfig: vaeConfig, vae: vae,
            textEncoderConfig: textConfig, textEncoder: text, schedulerConfig: SchedulerConfig(),
            padTokenID: family == .sd2 ? 0 : 49407)
        try sidecar.apply(to: &model)
        try model.unetConfig.validate(path: path)
        return model
    }
}

/// Settings that ride next to a single-file checkpoint (`<name>.config.json`), for what
/// the weights cannot show: v-prediction, head counts, group-norm groups.
public struct SidecarConfig: Decodable, Sendable {
    /// `epsilon` or `v_prediction`.
    public var predictionType: String?
    /// UNet heads per block (diffusers' `attention_head_dim`).
    public var attentionHeadDim: PerBlock?
    /// UNet group-norm groups.
    public var normNumGroups: Int?
    /// VAE group-norm groups.
    public var vaeNormNumGroups: Int?
    /// Text-encoder attention heads.
    public var textEncoderHeads: Int?

    enum CodingKeys: String, CodingKey {
        case predictionType = "prediction_type"
        case attentionHeadDim = "attention_head_dim"
        case normNumGroups = "norm_num_groups"
        case vaeNormNumGroups = "vae_norm_num_groups"
        case textEncoderHeads = "text_encoder_num_attention_heads"
    }

    /// No overrides.
    public init() {}

    /// Reads `<checkpoint without extension>.config.json` if it exists.
    public static func load(for checkpoint: URL) throws -> SidecarConfig {
        let url = checkpoint.deletingPathExtension().appendingPathExtension("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return SidecarConfig() }
        return try ModelWeights.readJSON(SidecarConfig.self, url)
    }

    func apply(to model: inout ModelWeights) throws {
        if let predictionType {
            guard ["epsilon", "v_prediction"].contains(predictionType) else {
                throw WeightsError("prediction_type", "must be epsilon or v_prediction, got \(predictionType)")
            }
            model.schedulerConfig.predictionType = predictionType
        }
        if let attentionHeadDim { model.unetConfig.attentionHeadDim = attentionHeadDim }
        if let normNumGroups { model.unetConfig.normNumGroups = normNumGroups }
        if let vaeNormNumGroups { model.vaeConfig.normNumGroups = vaeNormNumGroups }
        if let textEncoderHeads { model.textEncoderConfig.numAttentionHeads = textEncoderHeads }
    }
}
