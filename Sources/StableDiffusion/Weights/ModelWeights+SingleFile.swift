import Tensors

/// Single files: the CompVis/LDM layout of SD 1.x/2.x here, SDXL's SGM layout in `ModelWeights+SGM.swift`; the UNet
/// and text-encoder shapes both layouts share are read by the helpers below, the VAE's in `ModelWeights+VAE.swift`.
extension ModelWeights {
    /// Splits a single file's state dict into components, maps names, and infers configs from shapes: the SGM layout
    /// (`conditioner.embedders.*`, SDXL base and refiner) or the LDM one (`cond_stage_model.*`, SD 1.x/2.x).
    public static func fromSingleFile(_ tensors: [String: Tensor], path: String, sidecar: SidecarConfig = SidecarConfig()) throws -> ModelWeights {
        if tensors.keys.contains(where: CheckpointKeys.isSGM) { return try fromSGMFile(tensors, path: path, sidecar: sidecar) }
        let (unet, unetShapes) = try singleFileUNet(component(tensors, CheckpointKeys.unetPrefix), path: path)
        var unetConfig = unetShapes

        let family: ModelFamily
        var text: [String: Tensor] = [:]
        let openCLIP = component(tensors, CheckpointKeys.openCLIPPrefix)
        if !openCLIP.isEmpty {
            family = .sd2
            // SD 2.x conditions on the penultimate layer: keep all but the last, as diffusers does.
            let layers = try openCLIPLayerCount(openCLIP, path: path, prefix: CheckpointKeys.openCLIPPrefix)
            text = CheckpointKeys.openCLIPTensors(openCLIP, layers: max(1, layers - 1))
        } else {
            family = .sd1
            for (key, tensor) in component(tensors, CheckpointKeys.clipPrefix) {
                if let name = CheckpointKeys.clipName(key) { text[name] = tensor }
            }
            guard !text.isEmpty else { throw WeightsError(path, "no text encoder weights (cond_stage_model.*)") }
        }
        var textConfig = try inferredTextConfig(text, path: path)
        textConfig.hiddenAct = family == .sd2 ? "gelu" : "quick_gelu"
        // Head counts are not in the weights: SD 1.x uses 8 heads, SD 2.x heads of width 64.
        unetConfig.attentionHeadDim = family == .sd1 ? .all(8) : .each(unetConfig.blockOutChannels.map { max(1, $0 / 64) })
        // The native size is not in the weights either: 512 × 512, but 768 × 768 for SD 2.x v-prediction
        // models (set in `load` once the prediction type is known), as diffusers' single-file loader infers.
        unetConfig.sampleSize = 64
        let (vaeConfig, vae) = try ldmVAE(component(tensors, CheckpointKeys.vaePrefix), path: path)

        var model = ModelWeights(
            family: family, unetConfig: unetConfig, unet: unet, vaeConfig: vaeConfig, vae: vae,
            textEncoderConfig: textConfig, textEncoder: text, schedulerConfig: SchedulerConfig(),
            padTokenID: family == .sd2 ? 0 : 49407)
        try sidecar.apply(to: &model)
        try model.unetConfig.validate(path: path)
        return model
    }

    /// The tensors under `prefix` that the engine reads, with the prefix removed.
    static func component(_ tensors: [String: Tensor], _ prefix: String) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (key, tensor) in tensors where key.hasPrefix(prefix) && CheckpointKeys.isUsed(key) {
            result[String(key.dropFirst(prefix.count))] = tensor
        }
        return result
    }

    /// The shape of `dictionary[key]`, which must be there with `rank` dimensions; errors name the key as the file
    /// does (`prefix` + key).
    static func shape(_ dictionary: [String: Tensor], _ key: String, rank: Int, path: String, prefix: String = "") throws -> [Int] {
        guard let tensor = dictionary[key] else {
            throw WeightsError(path, "missing tensor \(prefix)\(key): the file is truncated or not a whole model")
        }
        guard tensor.rank == rank else {
            throw WeightsError(
                path, "tensor \(prefix)\(key) has shape \(tensor.shape), expected \(rank) dimensions: the file is damaged or another architecture")
        }
        return tensor.shape
    }

    /// The indices N of keys `<prefix>N.…`.
    static func indices(_ keys: some Sequence<String>, after prefix: String) -> Set<Int> {
        Set(
            keys.compactMap { key -> Int? in
                guard key.hasPrefix(prefix) else { return nil }
                return Int(key.dropFirst(prefix.count).prefix { $0 != "." })
            })
    }

    /// An LDM-layout UNet (prefix removed) under diffusers' names, with the settings its shapes show: levels, widths,
    /// block types, channels, cross-attention width and the kind of transformer projection. Heads, groups and the
    /// native size are the caller's to set. `names` maps each key (SGM files add the added embedding's).
    static func singleFileUNet(
        _ raw: [String: Tensor], path: String, names: (String, Int) -> String? = CheckpointKeys.unetName
    ) throws -> ([String: Tensor], UNetConfig) {
        guard !raw.isEmpty else {
            throw WeightsError(path, "no UNet weights (model.diffusion_model.*): not a Stable Diffusion checkpoint, or an unsupported layout")
        }
        let inputBlocks = indices(raw.keys, after: "input_blocks.")
        let downsamplers = inputBlocks.filter { index in raw.keys.contains { $0.hasPrefix("input_blocks.\(index).0.op.") } }.sorted()
        guard let firstDown = downsamplers.first, firstDown >= 2 else {
            throw WeightsError(path, "cannot find the UNet's downsamplers (input_blocks.N.0.op)")
        }
        let layersPerBlock = firstDown - 1
        var unet: [String: Tensor] = [:]
        for (key, tensor) in raw {
            if let name = names(key, layersPerBlock) { unet[name] = tensor }
        }
        func shape(_ key: String, rank: Int) throws -> [Int] {
            try Self.shape(unet, key, rank: rank, path: path, prefix: "UNet ")
        }
        var config = UNetConfig()
        let levels = indices(unet.keys, after: "down_blocks.").count
        config.layersPerBlock = layersPerBlock
        config.blockOutChannels = try (0..<levels).map { try shape("down_blocks.\($0).resnets.0.conv1.weight", rank: 4)[0] }
        config.downBlockTypes = (0..<levels).map { level in
            unet.keys.contains { $0.hasPrefix("down_blocks.\(level).attentions.") } ? "CrossAttnDownBlock2D" : "DownBlock2D"
        }
        config.upBlockTypes = (0..<levels).map { level in
            unet.keys.contains { $0.hasPrefix("up_blocks.\(level).attentions.") } ? "CrossAttnUpBlock2D" : "UpBlock2D"
        }
        config.inChannels = try shape("conv_in.weight", rank: 4)[1]
        config.outChannels = try shape("conv_out.weight", rank: 4)[0]
        if let attention = unet.keys.sorted().first(where: { $0.hasSuffix("attn2.to_k.weight") }) {
            config.crossAttentionDim = try shape(attention, rank: 2)[1]
        }
        if let projection = unet.keys.sorted().first(where: { $0.hasSuffix("proj_in.weight") }) {
            config.useLinearProjection = unet[projection]?.rank == 2
        }
        return (unet, config)
    }

    /// The transformer layers of an OpenCLIP text tower (prefix removed), after checking that they run 0..<n and that
    /// each fused q/k/v projection is three `width`-row blocks, so the split cannot fail.
    static func openCLIPLayerCount(_ tower: [String: Tensor], path: String, prefix: String) throws -> Int {
        let layers = indices(tower.keys, after: "transformer.resblocks.")
        guard let last = layers.max(), layers.count == last + 1 else {
            throw WeightsError(path, "OpenCLIP text tower \(prefix)transformer.resblocks.* has layers \(layers.sorted()); expected 0…n without gaps")
        }
        let width = try shape(tower, "token_embedding.weight", rank: 2, path: path, prefix: prefix)[1]
        for layer in 0...last {
            let key = "transformer.resblocks.\(layer).attn.in_proj_weight"
            let fused = try shape(tower, key, rank: 2, path: path, prefix: prefix)
            let bias = try shape(tower, "transformer.resblocks.\(layer).attn.in_proj_bias", rank: 1, path: path, prefix: prefix)
            guard fused == [3 * width, width], bias == [3 * width] else {
                throw WeightsError(
                    path, "\(prefix)\(key) is \(fused) (bias \(bias)); the text tower is \(width) wide, so q/k/v need [\(3 * width), \(width)]")
            }
        }
        return last + 1
    }

    /// A CLIP text encoder's settings from its weights (engine names): layers, widths, vocabulary and positions, and
    /// heads of width 64, as CLIP ViT-L (12), OpenCLIP ViT-H (16) and ViT-bigG (20) have; the activation and heads
    /// that differ are the caller's to set. `prefix` names the encoder in errors.
    static func inferredTextConfig(_ text: [String: Tensor], path: String, prefix: String = "text encoder ") throws -> TextEncoderConfig {
        var config = TextEncoderConfig()
        let layers = indices(text.keys, after: "encoder.layers.")
        guard let last = layers.max(), layers.count == last + 1 else {
            throw WeightsError(path, "\(prefix)encoder.layers.* are \(layers.sorted()); expected layers 0…n without gaps")
        }
        config.numHiddenLayers = layers.count
        let token = try shape(text, "embeddings.token_embedding.weight", rank: 2, path: path, prefix: prefix)
        config.vocabSize = token[0]
        config.hiddenSize = token[1]
        config.numAttentionHeads = max(1, token[1] / 64)
        config.intermediateSize = try shape(text, "encoder.layers.0.mlp.fc1.weight", rank: 2, path: path, prefix: prefix)[0]
        config.maxPositionEmbeddings = try shape(text, "embeddings.position_embedding.weight", rank: 2, path: path, prefix: prefix)[0]
        return config
    }
}
