import Foundation

/// An int-or-list config value (diffusers writes `attention_head_dim: 8` or `[5, 10, 20, 20]`).
public enum PerBlock: Codable, Equatable, Sendable {
    case all(Int)
    case each([Int])

    /// The value for block `index` of `count`.
    public func value(at index: Int) -> Int {
        switch self {
        case .all(let value): return value
        case .each(let values): return values[min(index, values.count - 1)]
        }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) {
            self = .all(value)
        } else {
            self = .each(try container.decode([Int].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .all(let value): try container.encode(value)
        case .each(let values): try container.encode(values)
        }
    }
}

/// The UNet2DConditionModel settings the engine uses (diffusers' `unet/config.json`).
public struct UNetConfig: Codable, Equatable, Sendable {
    public var inChannels = 4
    public var outChannels = 4
    public var blockOutChannels = [320, 640, 1280, 1280]
    public var layersPerBlock = 2
    public var downBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    public var upBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    public var crossAttentionDim = 768
    /// diffusers' historical name: for SD 1.x/2.x it holds the number of heads per block.
    public var attentionHeadDim: PerBlock = .all(8)
    /// When set, the heads per block (newer configs); takes precedence over `attentionHeadDim`.
    public var numAttentionHeads: PerBlock?
    public var useLinearProjection = false
    public var normNumGroups = 32
    public var normEps: Double = 1e-5
    public var flipSinToCos = true
    public var freqShift = 0
    public var sampleSize = 64
    public var upcastAttention = false
    public var transformerLayersPerBlock: PerBlock = .all(1)
    public var actFn = "silu"
    public var classEmbedType: String?
    /// `text_time` for SDXL: pooled text and micro-conditioning numbers added to the time embedding.
    public var additionEmbedType: String?
    /// Width of each micro-conditioning number's sinusoidal embedding (SDXL: 256).
    public var additionTimeEmbedDim: Int?
    /// Inputs of the added embedding: the pooled text width plus one `additionTimeEmbedDim` per number (SDXL: 2816).
    public var projectionClassEmbeddingsInputDim: Int?

    /// SD 1.5's UNet.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels"
        case outChannels = "out_channels"
        case blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block"
        case downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types"
        case crossAttentionDim = "cross_attention_dim"
        case attentionHeadDim = "attention_head_dim"
        case numAttentionHeads = "num_attention_heads"
        case useLinearProjection = "use_linear_projection"
        case normNumGroups = "norm_num_groups"
        case normEps = "norm_eps"
        case flipSinToCos = "flip_sin_to_cos"
        case freqShift = "freq_shift"
        case sampleSize = "sample_size"
        case upcastAttention = "upcast_attention"
        case transformerLayersPerBlock = "transformer_layers_per_block"
        case actFn = "act_fn"
        case classEmbedType = "class_embed_type"
        case additionEmbedType = "addition_embed_type"
        case additionTimeEmbedDim = "addition_time_embed_dim"
        case projectionClassEmbeddingsInputDim = "projection_class_embeddings_input_dim"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = UNetConfig()
        inChannels = try c.decode(.inChannels, or: d.inChannels)
        outChannels = try c.decode(.outChannels, or: d.outChannels)
        blockOutChannels = try c.decode(.blockOutChannels, or: d.blockOutChannels)
        layersPerBlock = try c.decode(.layersPerBlock, or: d.layersPerBlock)
        downBlockTypes = try c.decode(.downBlockTypes, or: d.downBlockTypes)
        upBlockTypes = try c.decode(.upBlockTypes, or: d.upBlockTypes)
        crossAttentionDim = try c.decode(.crossAttentionDim, or: d.crossAttentionDim)
        attentionHeadDim = try c.decode(.attentionHeadDim, or: d.attentionHeadDim)
        numAttentionHeads = try c.decodeIfPresent(PerBlock.self, forKey: .numAttentionHeads)
        useLinearProjection = try c.decode(.useLinearProjection, or: d.useLinearProjection)
        normNumGroups = try c.decode(.normNumGroups, or: d.normNumGroups)
        normEps = try c.decode(.normEps, or: d.normEps)
        flipSinToCos = try c.decode(.flipSinToCos, or: d.flipSinToCos)
        freqShift = try c.decode(.freqShift, or: d.freqShift)
        sampleSize = try c.decode(.sampleSize, or: d.sampleSize)
        upcastAttention = try c.decode(.upcastAttention, or: d.upcastAttention)
        transformerLayersPerBlock = try c.decode(.transformerLayersPerBlock, or: d.transformerLayersPerBlock)
        actFn = try c.decode(.actFn, or: d.actFn)
        classEmbedType = try c.decodeIfPresent(String.self, forKey: .classEmbedType)
        additionEmbedType = try c.decodeIfPresent(String.self, forKey: .additionEmbedType)
        additionTimeEmbedDim = try c.decodeIfPresent(Int.self, forKey: .additionTimeEmbedDim)
        projectionClassEmbeddingsInputDim = try c.decodeIfPresent(Int.self, forKey: .projectionClassEmbeddingsInputDim)
    }

    /// Attention heads of down block `index` (and of the matching up block, counted from the bottom).
    public func heads(block index: Int) -> Int {
        (numAttentionHeads ?? attentionHeadDim).value(at: index)
    }

    /// Whether the UNet takes SDXL's added conditioning (pooled text + size, crop and aesthetic numbers).
    public var isXL: Bool { additionEmbedType == "text_time" }

    /// Throws unless the engine can run this UNet (SD 1.x/2.x and SDXL shapes).
    public func validate(path: String) throws {
        guard classEmbedType == nil, additionEmbedType == nil || isXL else {
            throw WeightsError(
                path,
                "UNet uses \(classEmbedType.map { "class embedding \($0)" } ?? "addition embedding \(additionEmbedType ?? "")") (an upscaler or another family); SD 1.x, 2.x and SDXL UNets are supported"
            )
        }
        if isXL, additionTimeEmbedDim == nil || projectionClassEmbeddingsInputDim == nil {
            throw WeightsError(path, "SDXL UNet config needs addition_time_embed_dim and projection_class_embeddings_input_dim")
        }
        guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
            throw WeightsError(
                path, "UNet config has \(blockOutChannels.count) block widths but \(downBlockTypes.count) down and \(upBlockTypes.count) up blocks")
        }
        let known: Set = ["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        if let unknown = (downBlockTypes + upBlockTypes).first(where: { !known.contains($0) }) {
            throw WeightsError(path, "UNet block type \(unknown) is not supported")
        }
        guard [4, 9].contains(inChannels) || inChannels > 0 else { throw WeightsError(path, "UNet in_channels must be positive") }
    }
}

extension KeyedDecodingContainer {
    /// The value under `key`, or `fallback` when the config leaves the key out or writes null (diffusers' configs
    /// omit settings newer than the file, and the engine's defaults are the class defaults).
    func decode<T: Decodable>(_ key: Key, or fallback: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback
    }
}

/// The keys a diffusers config lists in `_use_default_values`: diffusers loads each of them with
/// its class's default and ignores the value written beside it (which differs when a value was set
/// after the model was made, as `register_to_config` does).
func defaultedKeys(_ decoder: Decoder) throws -> Set<String> {
    enum Key: String, CodingKey { case useDefaultValues = "_use_default_values" }
    return Set(try decoder.container(keyedBy: Key.self).decodeIfPresent([String].self, forKey: .useDefaultValues) ?? [])
}

/// The AutoencoderKL settings the engine uses (diffusers' `vae/config.json`).
public struct VAEConfig: Codable, Equatable, Sendable {
    public var inChannels = 3
    public var outChannels = 3
    public var latentChannels = 4
    public var blockOutChannels = [128, 256, 512, 512]
    public var layersPerBlock = 2
    public var normNumGroups = 32
    public var sampleSize = 512
    /// Latents are multiplied by this after encoding (SD: 0.18215).
    public var scalingFactor: Double = 0.18215
    public var useQuantConv = true
    public var usePostQuantConv = true

    /// SD's VAE.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels"
        case outChannels = "out_channels"
        case latentChannels = "latent_channels"
        case blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block"
        case normNumGroups = "norm_num_groups"
        case sampleSize = "sample_size"
        case scalingFactor = "scaling_factor"
        case useQuantConv = "use_quant_conv"
        case usePostQuantConv = "use_post_quant_conv"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VAEConfig()
        inChannels = try c.decode(.inChannels, or: d.inChannels)
        outChannels = try c.decode(.outChannels, or: d.outChannels)
        latentChannels = try c.decode(.latentChannels, or: d.latentChannels)
        blockOutChannels = try c.decode(.blockOutChannels, or: d.blockOutChannels)
        layersPerBlock = try c.decode(.layersPerBlock, or: d.layersPerBlock)
        normNumGroups = try c.decode(.normNumGroups, or: d.normNumGroups)
        sampleSize = try c.decode(.sampleSize, or: d.sampleSize)
        // diffusers reads a listed scaling factor as its default, whatever value is written beside it.
        scalingFactor =
            try defaultedKeys(decoder).contains("scaling_factor")
            ? d.scalingFactor : c.decode(.scalingFactor, or: d.scalingFactor)
        useQuantConv = try c.decode(.useQuantConv, or: d.useQuantConv)
        usePostQuantConv = try c.decode(.usePostQuantConv, or: d.usePostQuantConv)
    }
}

/// The CLIP text transformer's settings (transformers' `text_encoder/config.json`).
public struct TextEncoderConfig: Codable, Equatable, Sendable {
    public var vocabSize = 49408
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var maxPositionEmbeddings = 77
    /// `quick_gelu` (OpenAI CLIP, SD 1.x) or `gelu` (OpenCLIP, SD 2.x).
    public var hiddenAct = "quick_gelu"
    public var layerNormEps: Double = 1e-5
    /// End token id: 2 in the original OpenAI/SDXL configs, which transformers reads as "pool at the highest id"
    /// (the end token is the vocabulary's last); any other value pools at that id's first position.
    public var eosTokenID = 2

    /// SD 1.x's CLIP ViT-L/14 text tower.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case eosTokenID = "eos_token_id"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TextEncoderConfig()
        vocabSize = try c.decode(.vocabSize, or: d.vocabSize)
        hiddenSize = try c.decode(.hiddenSize, or: d.hiddenSize)
        intermediateSize = try c.decode(.intermediateSize, or: d.intermediateSize)
        numHiddenLayers = try c.decode(.numHiddenLayers, or: d.numHiddenLayers)
        numAttentionHeads = try c.decode(.numAttentionHeads, or: d.numAttentionHeads)
        maxPositionEmbeddings = try c.decode(.maxPositionEmbeddings, or: d.maxPositionEmbeddings)
        hiddenAct = try c.decode(.hiddenAct, or: d.hiddenAct)
        layerNormEps = try c.decode(.layerNormEps, or: d.layerNormEps)
        eosTokenID = try c.decode(.eosTokenID, or: d.eosTokenID)
    }
}

/// Noise-schedule settings shared by every sampler (diffusers' `scheduler/scheduler_config.json`).
public struct SchedulerConfig: Codable, Equatable, Sendable {
    public var numTrainTimesteps = 1000
    public var betaStart: Double = 0.00085
    public var betaEnd: Double = 0.012
    public var betaSchedule = "scaled_linear"
    /// `epsilon` or `v_prediction` (SD 2.x 768 models).
    public var predictionType = "epsilon"
    public var stepsOffset = 1
    /// `leading`, `trailing` or `linspace`; nil: each sampler's own default, as diffusers' scheduler
    /// classes have it (`leading` for DDIM, DDPM, PNDM and LCM, `linspace` for the others). A config
    /// file that leaves it out, or lists it in `_use_default_values` (diffusers then ignores the
    /// value written next to it), gets nil.
    public var timestepSpacing: String? = "leading"
    /// DDIM and DDPM clamp the predicted clean latents to ±`clipSampleRange`; nil: the class default, as diffusers
    /// reads a config without the key (true for both). SD's configs and single files say false.
    public var clipSample: Bool? = false
    /// The clamp's bound.
    public var clipSampleRange: Double = 1
    /// DDIM and PNDM: the step after the last uses ᾱ = 1 rather than ᾱ₀; nil: the class default (DDIM true, PNDM
    /// false). SD's configs and single files say false.
    public var setAlphaToOne: Bool? = false

    /// SD 1.5's scheduler settings (as diffusers makes them for a single-file checkpoint).
    public init() {}

    enum CodingKeys: String, CodingKey {
        case numTrainTimesteps = "num_train_timesteps"
        case betaStart = "beta_start"
        case betaEnd = "beta_end"
        case betaSchedule = "beta_schedule"
        case predictionType = "prediction_type"
        case stepsOffset = "steps_offset"
        case timestepSpacing = "timestep_spacing"
        case clipSample = "clip_sample"
        case clipSampleRange = "clip_sample_range"
        case setAlphaToOne = "set_alpha_to_one"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SchedulerConfig()
        numTrainTimesteps = try c.decode(.numTrainTimesteps, or: d.numTrainTimesteps)
        betaStart = try c.decode(.betaStart, or: d.betaStart)
        betaEnd = try c.decode(.betaEnd, or: d.betaEnd)
        betaSchedule = try c.decode(.betaSchedule, or: d.betaSchedule)
        predictionType = try c.decode(.predictionType, or: d.predictionType)
        stepsOffset = try c.decode(.stepsOffset, or: d.stepsOffset)
        timestepSpacing =
            try defaultedKeys(decoder).contains("timestep_spacing")
            ? nil : c.decodeIfPresent(String.self, forKey: .timestepSpacing)
        clipSample = try c.decodeIfPresent(Bool.self, forKey: .clipSample)
        clipSampleRange = try c.decode(.clipSampleRange, or: d.clipSampleRange)
        setAlphaToOne = try c.decodeIfPresent(Bool.self, forKey: .setAlphaToOne)
    }
}

/// ControlNetModel settings: the UNet encoder's plus the conditioning embedding.
public struct ControlNetConfig: Codable, Equatable, Sendable {
    /// The copied UNet encoder's settings.
    public var unet: UNetConfig
    /// Channels of the conditioning embedding's convolutions.
    public var conditioningEmbeddingOutChannels = [16, 32, 96, 256]
    /// Control images are RGB or BGR.
    public var conditioningChannelOrder = "rgb"

    enum CodingKeys: String, CodingKey {
        case conditioningEmbeddingOutChannels = "conditioning_embedding_out_channels"
        case conditioningChannelOrder = "controlnet_conditioning_channel_order"
    }

    public init(from decoder: Decoder) throws {
        unet = try UNetConfig(from: decoder)
        // A ControlNet has no up blocks; mirror the down blocks so the shared checks hold.
        unet.upBlockTypes = unet.downBlockTypes.reversed().map { $0.replacingOccurrences(of: "Down", with: "Up") }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        conditioningEmbeddingOutChannels = try c.decode(.conditioningEmbeddingOutChannels, or: [16, 32, 96, 256])
        conditioningChannelOrder = try c.decode(.conditioningChannelOrder, or: "rgb")
    }

    public func encode(to encoder: Encoder) throws {
        try unet.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(conditioningEmbeddingOutChannels, forKey: .conditioningEmbeddingOutChannels)
        try c.encode(conditioningChannelOrder, forKey: .conditioningChannelOrder)
    }
}
