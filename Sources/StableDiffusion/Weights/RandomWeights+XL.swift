import Tensors

extension ModelWeights {
    /// An SDXL base model with random weights (fp16 by default, as downloads store them) under diffusers' names, for
    /// benchmarks that must not need a download: the 320/640/1280 UNet with 1, 2 and 10 transformer layers a level,
    /// 2048-wide cross-attention and text_time embeddings; CLIP ViT-L/14 beside OpenCLIP ViT-bigG/14 (1280 wide, 32
    /// layers, with its 1280 projection); the 128/256/512/512 VAE with SDXL's scaling factor.
    public static func randomXL(seed: UInt64 = 1, element: ElementType = .float16) -> ModelWeights {
        var generator = RandomWeightGenerator(seed: seed, element: element)
        let unet = UNetConfig.sdxlBase
        var vae = VAEConfig()
        (vae.sampleSize, vae.scalingFactor) = (1024, 0.13025)
        let first = TextEncoderConfig()
        var second = TextEncoderConfig()
        (second.hiddenSize, second.intermediateSize, second.numHiddenLayers, second.numAttentionHeads) = (1280, 5120, 32, 20)
        second.hiddenAct = "gelu"
        var model = ModelWeights(
            family: .sdxl, unetConfig: unet, unet: generator.unet(unet), vaeConfig: vae, vae: generator.vae(vae),
            textEncoderConfig: first, textEncoder: generator.textEncoder(first), schedulerConfig: SchedulerConfig(), padTokenID: 49407)
        model.textEncoder2 = TextEncoderWeights(config: second, weights: generator.textEncoder(second, projection: 1280), padTokenID: 0)
        model.forceZerosForEmptyPrompt = true
        return model
    }
}

extension UNetConfig {
    /// SDXL base's UNet (stabilityai/stable-diffusion-xl-base-1.0's `unet/config.json`).
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
