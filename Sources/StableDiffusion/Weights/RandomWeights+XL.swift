import Tensors

extension UNetConfig {
    /// SDXL 1.0 base's UNet: three levels (320/640/1280) with 1, 2 and 10 transformer layers per block, heads of
    /// width 64, 2048-wide context from both text encoders, and the `text_time` added embedding (1280 pooled + 6 × 256).
    public static var sdxlBase: UNetConfig {
        var config = UNetConfig()
        config.blockOutChannels = [320, 640, 1280]
        config.downBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
        config.upBlockTypes = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        config.transformerLayersPerBlock = .each([1, 2, 10])
        config.attentionHeadDim = .each([5, 10, 20])
        config.crossAttentionDim = 2048
        config.useLinearProjection = true
        config.additionEmbedType = "text_time"
        config.additionTimeEmbedDim = 256
        config.projectionClassEmbeddingsInputDim = 2816
        config.sampleSize = 128
        return config
    }
}

extension TextEncoderConfig {
    /// SDXL's second text encoder: OpenCLIP ViT-bigG/14's text tower (1280 wide, 32 layers, 20 heads, GELU).
    public static var openCLIPBigG: TextEncoderConfig {
        var config = TextEncoderConfig()
        (config.hiddenSize, config.intermediateSize, config.numHiddenLayers) = (1280, 5120, 32)
        (config.numAttentionHeads, config.hiddenAct) = (20, "gelu")
        return config
    }
}

extension ModelWeights {
    /// A model of SDXL 1.0 base's shapes (CLIP ViT-L and OpenCLIP ViT-bigG with its 1280-wide projection, the
    /// UNet of `UNetConfig.sdxlBase`, SD's VAE with SDXL's scaling) with random weights stored as `element` (half
    /// precision by default, as downloads are), for benchmarks.
    public static func randomXL(seed: UInt64 = 1, element: ElementType = .float16) -> ModelWeights {
        var vae = VAEConfig()
        vae.scalingFactor = 0.13025
        vae.sampleSize = 1024
        var model = random(unet: .sdxlBase, vae: vae, seed: seed, element: element)
        var generator = RandomWeightGenerator(seed: seed &+ 2, element: element)
        let bigG = TextEncoderConfig.openCLIPBigG
        var second = generator.textEncoder(bigG)
        generator.tensors = [:]
        generator.linear("text_projection", bigG.hiddenSize, 1280, bias: false)
        second.merge(generator.tensors) { first, _ in first }
        model.family = .sdxl
        model.textEncoder2 = TextEncoderWeights(config: bigG, weights: second, padTokenID: 0)
        model.forceZerosForEmptyPrompt = true
        return model
    }
}
