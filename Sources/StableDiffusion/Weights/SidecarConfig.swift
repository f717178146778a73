import Foundation

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
    /// Attention heads of the first text encoder (SD 1.x/2.x's only one; SDXL base's CLIP ViT-L).
    public var textEncoderHeads: Int?
    /// Attention heads of SDXL's OpenCLIP ViT-bigG encoder (`text_encoder_2` in diffusers' folders, the refiner's
    /// only encoder included).
    public var textEncoder2Heads: Int?
    /// SDXL: whether an empty negative prompt conditions on zeros (default: true for the base, false for the refiner).
    public var forceZerosForEmptyPrompt: Bool?

    enum CodingKeys: String, CodingKey {
        case predictionType = "prediction_type"
        case attentionHeadDim = "attention_head_dim"
        case normNumGroups = "norm_num_groups"
        case vaeNormNumGroups = "vae_norm_num_groups"
        case textEncoderHeads = "text_encoder_num_attention_heads"
        case textEncoder2Heads = "text_encoder_2_num_attention_heads"
        case forceZerosForEmptyPrompt = "force_zeros_for_empty_prompt"
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
        // The bigG encoder is the second one of an SDXL base but the only one, `textEncoder`, of the refiner.
        if let textEncoderHeads {
            guard model.family != .sdxlRefiner else {
                throw WeightsError(
                    CodingKeys.textEncoderHeads.rawValue,
                    "the SDXL refiner has no first text encoder; give its OpenCLIP encoder's heads as text_encoder_2_num_attention_heads")
            }
            try Self.setHeads(textEncoderHeads, of: &model.textEncoderConfig, key: .textEncoderHeads)
        }
        if let textEncoder2Heads {
            if model.family == .sdxlRefiner {
                try Self.setHeads(textEncoder2Heads, of: &model.textEncoderConfig, key: .textEncoder2Heads)
            } else if model.textEncoder2 != nil {
                try Self.setHeads(textEncoder2Heads, of: &model.textEncoder2!.config, key: .textEncoder2Heads)
            } else {
                throw WeightsError(
                    CodingKeys.textEncoder2Heads.rawValue,
                    "this model has one text encoder (SD 1.x/2.x); give its heads as text_encoder_num_attention_heads")
            }
        }
        if let forceZerosForEmptyPrompt { model.forceZerosForEmptyPrompt = forceZerosForEmptyPrompt }
    }

    /// Sets an encoder's head count, which must split its width evenly (the attention would not run otherwise).
    private static func setHeads(_ heads: Int, of config: inout TextEncoderConfig, key: CodingKeys) throws {
        guard heads > 0, config.hiddenSize % heads == 0 else {
            throw WeightsError(key.rawValue, "\(heads) heads do not split the \(config.hiddenSize)-wide text encoder evenly")
        }
        config.numAttentionHeads = heads
    }
}
