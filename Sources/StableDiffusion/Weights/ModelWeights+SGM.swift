import Tensors

/// SDXL single files in Stability's SGM layout: the base (CLIP ViT-L and OpenCLIP ViT-bigG) and the refiner (bigG
/// alone), told apart by their text encoders' prefixes. Configs come from the shapes; what the weights cannot show
/// takes SDXL's values, as diffusers' single-file loader gives them, unless the sidecar config says otherwise.
extension ModelWeights {
    /// SDXL's VAE scaling factor (diffusers' SDXL VAE config; SD's is 0.18215).
    static let sdxlScalingFactor = 0.13025
    /// Micro-conditioning numbers the base's added embedding takes: original size, crop corner, target size.
    static let sdxlBaseNumbers = 6
    /// The refiner's: original size, crop corner, aesthetic score.
    static let sdxlRefinerNumbers = 5

    /// Builds an SDXL base or refiner from an SGM state dict.
    static func fromSGMFile(_ tensors: [String: Tensor], path: String, sidecar: SidecarConfig) throws -> ModelWeights {
        let clip = component(tensors, CheckpointKeys.sgmCLIPPrefix)
        let baseBigG = component(tensors, CheckpointKeys.sgmBigGPrefix)
        let refinerBigG = component(tensors, CheckpointKeys.sgmRefinerBigGPrefix)
        let family: ModelFamily
        let bigG: TextEncoderWeights
        let pooledWidth: Int
        switch (clip.isEmpty, baseBigG.isEmpty, refinerBigG.isEmpty) {
        case (false, false, true):
            family = .sdxl
            (bigG, pooledWidth) = try bigGEncoder(baseBigG, path: path, prefix: CheckpointKeys.sgmBigGPrefix)
        case (true, true, false):
            family = .sdxlRefiner
            (bigG, pooledWidth) = try bigGEncoder(refinerBigG, path: path, prefix: CheckpointKeys.sgmRefinerBigGPrefix)
        default:
            let found = CheckpointKeys.sgmTextPrefixes.filter { prefix in tensors.keys.contains { $0.hasPrefix(prefix) } }
            throw WeightsError(
                path,
                "SDXL text encoders found: \(found.map { $0 + "*" }.joined(separator: ", ")); an SDXL base has \(CheckpointKeys.sgmCLIPPrefix)* (CLIP ViT-L) and \(CheckpointKeys.sgmBigGPrefix)* (OpenCLIP ViT-bigG), a refiner \(CheckpointKeys.sgmRefinerBigGPrefix)* alone. The file is truncated or mixes models"
            )
        }
        let first = try family == .sdxl ? clipLEncoder(clip, path: path) : bigG

        let (unet, unetShapes) = try singleFileUNet(
            component(tensors, CheckpointKeys.unetPrefix), path: path, names: CheckpointKeys.sgmUNetName)
        var unetConfig = unetShapes
        try setXLShapes(
            of: &unetConfig, unet, pooledWidth: pooledWidth,
            numbers: family == .sdxl ? sdxlBaseNumbers : sdxlRefinerNumbers, path: path)
        let context = first.config.hiddenSize + (family == .sdxl ? bigG.config.hiddenSize : 0)
        guard context == unetConfig.crossAttentionDim else {
            throw WeightsError(
                path,
                "the text encoders give \(context)-wide context but the UNet's cross-attention takes \(unetConfig.crossAttentionDim): the file mixes parts of different models"
            )
        }
        let (vaeShapes, vae) = try ldmVAE(component(tensors, CheckpointKeys.vaePrefix), path: path)
        var vaeConfig = vaeShapes
        vaeConfig.scalingFactor = sdxlScalingFactor
        vaeConfig.sampleSize = 1024

        // The scheduler is SD's (scaled-linear betas, leading spacing, offset 1): diffusers' single-file SDXL config.
        var model = ModelWeights(
            family: family, unetConfig: unetConfig, unet: unet, vaeConfig: vaeConfig, vae: vae,
            textEncoderConfig: first.config, textEncoder: first.weights, schedulerConfig: SchedulerConfig(),
            padTokenID: first.padTokenID)
        if family == .sdxl { model.textEncoder2 = bigG }
        model.forceZerosForEmptyPrompt = family == .sdxl
        try sidecar.apply(to: &model)
        try model.unetConfig.validate(path: path)
        return model
    }

    /// SDXL's UNet settings beyond the LDM shapes: transformer depth per level, heads of width 64, the added
    /// (`text_time`) embedding's widths and the 1024 × 1024 native size. `numbers` is 6 for the base, 5 for the refiner.
    static func setXLShapes(of config: inout UNetConfig, _ unet: [String: Tensor], pooledWidth: Int, numbers: Int, path: String) throws {
        let depths = config.blockOutChannels.indices.map { level in
            indices(unet.keys, after: "down_blocks.\(level).attentions.0.transformer_blocks.").count
        }
        // A level without attention has no depth to show; diffusers' SDXL configs give it 1, or the one depth
        // every other level shares (the refiner's `transformer_layers_per_block: 4`).
        let shown = Set(depths.filter { $0 > 0 })
        config.transformerLayersPerBlock = shown.count <= 1 ? .all(shown.first ?? 1) : .each(depths.map { max(1, $0) })
        config.attentionHeadDim = .each(config.blockOutChannels.map { max(1, $0 / 64) })
        guard unet["add_embedding.linear_1.weight"] != nil, unet["add_embedding.linear_2.weight"] != nil else {
            throw WeightsError(
                path,
                "missing tensor model.diffusion_model.label_emb.0.0.weight or label_emb.0.2.weight: SDXL's UNet takes the pooled text and size conditioning through them; the file is truncated or not an SDXL checkpoint"
            )
        }
        let inputs = try shape(unet, "add_embedding.linear_1.weight", rank: 2, path: path, prefix: "UNet ")[1]
        let sinusoids = inputs - pooledWidth
        guard sinusoids > 0, sinusoids % numbers == 0 else {
            throw WeightsError(
                path,
                "label_emb.0.0.weight takes \(inputs) inputs, which is not the \(pooledWidth)-wide pooled text plus \(numbers) equal micro-conditioning embeddings (SDXL \(numbers == sdxlBaseNumbers ? "base" : "refiner")): the UNet and the text encoders come from different models"
            )
        }
        config.additionEmbedType = "text_time"
        config.additionTimeEmbedDim = sinusoids / numbers
        config.projectionClassEmbeddingsInputDim = inputs
        config.sampleSize = 128
    }

    /// SDXL's OpenCLIP ViT-bigG encoder (prefix removed) with every layer and its projection, which pads with `!` (0),
    /// and the width of its projected pooled output.
    static func bigGEncoder(_ tower: [String: Tensor], path: String, prefix: String) throws -> (TextEncoderWeights, pooledWidth: Int) {
        let layers = try openCLIPLayerCount(tower, path: path, prefix: prefix)
        guard let projection = tower["text_projection"] else {
            throw WeightsError(
                path,
                "missing tensor \(prefix)text_projection: SDXL's pooled text is the OpenCLIP encoder's projected output; the file is truncated or not an SDXL checkpoint"
            )
        }
        let weights = CheckpointKeys.bigGTensors(tower, layers: layers)
        var config = try inferredTextConfig(weights, path: path, prefix: "OpenCLIP text encoder \(prefix) ")
        guard projection.rank == 2, projection.shape[0] == config.hiddenSize else {
            throw WeightsError(
                path,
                "\(prefix)text_projection is \(projection.shape); the \(config.hiddenSize)-wide encoder needs [\(config.hiddenSize), projection width]"
            )
        }
        config.hiddenAct = "gelu"
        return (TextEncoderWeights(config: config, weights: weights, padTokenID: 0), projection.shape[1])
    }

    /// SDXL base's CLIP ViT-L encoder (prefix removed): quick-GELU, pads with the end token.
    static func clipLEncoder(_ source: [String: Tensor], path: String) throws -> TextEncoderWeights {
        var weights: [String: Tensor] = [:]
        for (key, tensor) in source {
            if let name = CheckpointKeys.clipName(key) { weights[name] = tensor }
        }
        var config = try inferredTextConfig(weights, path: path, prefix: "CLIP text encoder \(CheckpointKeys.sgmCLIPPrefix) ")
        config.hiddenAct = "quick_gelu"
        return TextEncoderWeights(config: config, weights: weights, padTokenID: 49407)
    }
}
