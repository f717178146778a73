import Foundation
import StableDiffusion
import Tensors
import Testing

/// A tiny SDXL model as a diffusers folder and as the SGM single file Tools/make_sdxl_single_file.py writes from it.
struct SDXLSingleFileCase: Sendable, CustomTestStringConvertible {
    let folder: String
    let family: ModelFamily
    var file: String { folder + ".safetensors" }
    var testDescription: String { file }
}

let sdxlSingleFileCases = [
    SDXLSingleFileCase(folder: "tiny-sdxl", family: .sdxl), SDXLSingleFileCase(folder: "tiny-sdxl-refiner", family: .sdxlRefiner),
]

/// Loads a model fixture by name.
private func loadFixture(_ name: String) throws -> ModelWeights {
    try ModelWeights.load(modelFixtures.appendingPathComponent(name))
}

@Test(arguments: sdxlSingleFileCases)
func sdxlSingleFileHoldsTheFolderTensorsAndConfigs(_ fixture: SDXLSingleFileCase) throws {
    let folder = try loadFixture(fixture.folder)
    let file = try loadFixture(fixture.file)
    #expect(folder.family == fixture.family && file.family == fixture.family)
    expectIdentical(folder.unet, file.unet, "\(fixture.file) unet")
    expectIdentical(folder.vae, file.vae, "\(fixture.file) vae")
    expectIdentical(folder.textEncoder, file.textEncoder, "\(fixture.file) text encoder")
    #expect((folder.textEncoder2 == nil) == (fixture.family == .sdxlRefiner) && (file.textEncoder2 == nil) == (folder.textEncoder2 == nil))
    if let expected = folder.textEncoder2, let actual = file.textEncoder2 {
        expectIdentical(expected.weights, actual.weights, "\(fixture.file) text encoder 2")
        #expect(actual.config == expected.config)
        #expect(actual.padTokenID == 0 && expected.padTokenID == 0)
    }
    #expect(file.textEncoderConfig == folder.textEncoderConfig)
    #expect(file.padTokenID == folder.padTokenID)
    // The tiny folder's Euler config leaves clip_sample and set_alpha_to_one out (each sampler's class default);
    // SDXL's released scheduler config, which single files take, sets both false.
    #expect(file.schedulerConfig.clipSample == false && file.schedulerConfig.setAlphaToOne == false)
    var schedulerConfig = file.schedulerConfig
    (schedulerConfig.clipSample, schedulerConfig.setAlphaToOne) = (folder.schedulerConfig.clipSample, folder.schedulerConfig.setAlphaToOne)
    #expect(schedulerConfig == folder.schedulerConfig)
    #expect(file.forceZerosForEmptyPrompt == folder.forceZerosForEmptyPrompt)

    // A single file cannot show its native size (SDXL's: 1024 × 1024) nor the transformer depth of a level without
    // attention, which nothing reads; the rest of the UNet config is diffusers' own.
    #expect(file.unetConfig.sampleSize == 128 && file.vaeConfig.sampleSize == 1024)
    let attending = folder.unetConfig.downBlockTypes.indices.filter { folder.unetConfig.downBlockTypes[$0] == "CrossAttnDownBlock2D" }
    #expect(
        attending.map(file.unetConfig.transformerLayersPerBlock.value(at:)) == attending.map(folder.unetConfig.transformerLayersPerBlock.value(at:)))
    var unetConfig = file.unetConfig
    unetConfig.sampleSize = folder.unetConfig.sampleSize
    unetConfig.transformerLayersPerBlock = folder.unetConfig.transformerLayersPerBlock
    #expect(unetConfig == folder.unetConfig)
    var vaeConfig = file.vaeConfig
    vaeConfig.sampleSize = folder.vaeConfig.sampleSize
    #expect(vaeConfig == folder.vaeConfig)

    // What real SGM files carry and the engine does not read is reported, and nothing else.
    #expect(file.ignoredKeys.contains { $0.hasSuffix("model.logit_scale") })
    #expect(file.ignoredKeys.allSatisfy { $0.hasSuffix("logit_scale") || $0.hasSuffix("position_ids") }, "\(file.ignoredKeys)")
}

@Test func sdxlBaseSingleFileHasBothEncodersAndTheAddedEmbedding() throws {
    let model = try loadFixture("tiny-sdxl.safetensors")
    let unet = model.unetConfig
    #expect(unet.isXL && unet.additionTimeEmbedDim == 8 && unet.projectionClassEmbeddingsInputDim == 40 + 6 * 8)
    #expect(unet.transformerLayersPerBlock == .each([1, 2, 3]) && unet.crossAttentionDim == 32 + 48)
    #expect(unet.blockOutChannels == [16, 32, 48] && unet.useLinearProjection && unet.attentionHeadDim == .each([2, 4, 6]))
    #expect(unet.downBlockTypes == ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"])
    #expect(model.textEncoderConfig.hiddenAct == "quick_gelu" && model.textEncoderConfig.hiddenSize == 32 && model.padTokenID == 49407)
    #expect(model.textEncoder["text_projection.weight"] == nil, "CLIP ViT-L has no projection in SDXL")
    let bigG = try #require(model.textEncoder2)
    #expect(bigG.config.hiddenAct == "gelu" && bigG.config.hiddenSize == 48)
    #expect(bigG.config.numHiddenLayers == 3, "every bigG layer is kept: the pooled output comes from the last")
    #expect(bigG.config.numAttentionHeads == 4 && bigG.config.eosTokenID == 2 && bigG.padTokenID == 0)
    #expect(bigG.weights["text_projection.weight"]?.shape == [40, 48], "OpenCLIP's [width, projection] P, transposed")
    #expect(model.vaeConfig.scalingFactor == 0.13025 && model.forceZerosForEmptyPrompt)
    #expect(model.ignoredKeys.contains("conditioner.embedders.0.transformer.text_model.embeddings.position_ids"))
    #expect(model.schedulerConfig.timestepSpacing == "leading" && model.schedulerConfig.stepsOffset == 1)
}

@Test func sdxlRefinerSingleFileHasOnlyTheBigGEncoder() throws {
    let model = try loadFixture("tiny-sdxl-refiner.safetensors")
    #expect(model.family == .sdxlRefiner && model.textEncoder2 == nil && !model.forceZerosForEmptyPrompt)
    #expect(model.textEncoderConfig.hiddenAct == "gelu" && model.textEncoderConfig.hiddenSize == 48 && model.padTokenID == 0)
    #expect(model.textEncoder["text_projection.weight"]?.shape == [40, 48])
    let unet = model.unetConfig
    #expect(unet.additionTimeEmbedDim == 8 && unet.projectionClassEmbeddingsInputDim == 40 + 5 * 8 && unet.crossAttentionDim == 48)
    #expect(unet.transformerLayersPerBlock == .each([1, 1, 2]) && unet.blockOutChannels == [16, 24, 32])
}

@Test(arguments: sdxlSingleFileCases)
func sdxlSingleFileRendersAsTheFolder(_ fixture: SDXLSingleFileCase) throws {
    func render(_ name: String) throws -> [Float] {
        let pipeline = try Pipeline(weights: try loadFixture(name))
        var settings = Pipeline.Settings()
        (settings.width, settings.height, settings.steps, settings.seed, settings.guidance) = (48, 32, 2, 17, 5)
        settings.sampler = .euler
        // The tiny encoders have a 1000-token vocabulary: 998 starts a prompt, 999 ends it; then each encoder's
        // padding (the end token for CLIP ViT-L, `!` = 0 for bigG).
        func tokens(_ body: [Int]) -> [[[Int]]] {
            let text = [998] + body + [999]
            let rows = [text + Array(repeating: 999, count: 77 - text.count), text + Array(repeating: 0, count: 77 - text.count)]
            return (fixture.family == .sdxl ? rows : [rows[1]]).map { [$0] }
        }
        let conditional = pipeline.encodeXL(tokens: tokens([17, 404, 23, 871, 5]))
        let unconditional = pipeline.encodeXL(tokens: tokens([300, 12]))
        return try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings).scalars
    }
    let expected = try render(fixture.folder)
    let actual = try render(fixture.file)
    #expect(expected.count == 4 * 8 * 12)
    #expect(actual == expected, "the single file must render bit for bit as the diffusers folder")
    #expect(expected.contains { $0 != 0 } && expected.allSatisfy(\.isFinite))
}

/// The tiny SDXL base's SGM tensors, to be damaged by a test.
private func sgmTensors(_ name: String = "tiny-sdxl.safetensors") throws -> [String: Tensor] {
    try SafeTensorsFile(url: modelFixtures.appendingPathComponent(name)).allTensors()
}

/// Loading `tensors` throws a `WeightsError` that names the file (or the sidecar key) and says every one of `phrases`.
private func expectWeightsError(
    _ tensors: [String: Tensor], sidecar: SidecarConfig = SidecarConfig(), _ phrases: String..., sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(sourceLocation: sourceLocation) {
        _ = try ModelWeights.fromSingleFile(tensors, path: "damaged.safetensors", sidecar: sidecar)
    } throws: { error in
        guard let error = error as? WeightsError else { return false }
        return phrases.allSatisfy { error.description.contains($0) }
    }
}

@Test func damagedSGMFilesFailWithAWeightsErrorThatSaysWhy() throws {
    let base = try sgmTensors()
    let bigG = CheckpointKeys.sgmBigGPrefix
    var tensors = base
    tensors[bigG + "text_projection"] = nil
    expectWeightsError(tensors, bigG + "text_projection", "pooled text")

    tensors = base
    tensors[bigG + "text_projection"] = Tensor(zeros: [40])
    expectWeightsError(tensors, "text_projection is [40]")

    tensors = base
    tensors["model.diffusion_model.label_emb.0.0.weight"] = nil
    expectWeightsError(tensors, "label_emb.0.0.weight", "truncated or not an SDXL checkpoint")

    // A UNet whose added embedding does not fit the pooled width and six equal sinusoid blocks.
    tensors = base
    tensors["model.diffusion_model.label_emb.0.0.weight"] = Tensor(zeros: [64, 87])
    expectWeightsError(tensors, "takes 87 inputs", "40-wide pooled text plus 6")

    // Fused q/k/v that cannot split into three 48-row blocks would trap in the split; the loader refuses it first.
    tensors = base
    tensors[bigG + "transformer.resblocks.1.attn.in_proj_weight"] = Tensor(zeros: [100, 48])
    expectWeightsError(tensors, "resblocks.1.attn.in_proj_weight is [100, 48]", "[144, 48]")

    tensors = base.filter { !$0.key.hasPrefix(bigG + "transformer.resblocks.1.") }
    expectWeightsError(tensors, "[0, 2]", "without gaps")

    // Without CLIP ViT-L the file is neither a base nor a refiner (whose bigG comes first).
    tensors = base.filter { !$0.key.hasPrefix(CheckpointKeys.sgmCLIPPrefix) }
    expectWeightsError(tensors, "found: \(bigG)*", "a refiner \(CheckpointKeys.sgmRefinerBigGPrefix)* alone")

    tensors = base.filter { !$0.key.hasPrefix("model.diffusion_model.") }
    expectWeightsError(tensors, "no UNet weights")

    tensors = base
    tensors["model.diffusion_model.input_blocks.0.0.weight"] = Tensor(zeros: [16, 4, 3])
    expectWeightsError(tensors, "conv_in.weight has shape [16, 4, 3]")
}

@Test func sgmSidecarHeadsGoToTheEncoderTheyName() throws {
    func sidecar(_ json: String) throws -> SidecarConfig { try JSONDecoder().decode(SidecarConfig.self, from: Data(json.utf8)) }
    let base = try sgmTensors()
    let model = try ModelWeights.fromSingleFile(
        base, path: "base", sidecar: try sidecar(#"{"text_encoder_num_attention_heads": 2, "text_encoder_2_num_attention_heads": 3}"#))
    #expect(model.textEncoderConfig.numAttentionHeads == 2 && model.textEncoder2?.config.numAttentionHeads == 3)
    // Without a sidecar, heads are 64 wide (CLIP ViT-L 12, bigG 20); the tiny encoders are narrower than one head.
    let bare = try ModelWeights.fromSingleFile(base, path: "base")
    #expect(bare.textEncoderConfig.numAttentionHeads == 1 && bare.textEncoder2?.config.numAttentionHeads == 1)
    #expect(bare.unetConfig.attentionHeadDim == .each([1, 1, 1]) && bare.unetConfig.normNumGroups == 32)

    let refiner = try sgmTensors("tiny-sdxl-refiner.safetensors")
    let refined = try ModelWeights.fromSingleFile(refiner, path: "refiner", sidecar: try sidecar(#"{"text_encoder_2_num_attention_heads": 6}"#))
    #expect(refined.textEncoderConfig.numAttentionHeads == 6, "the refiner's only encoder is the bigG one")
    expectWeightsError(refiner, sidecar: try sidecar(#"{"text_encoder_num_attention_heads": 4}"#), "text_encoder_2_num_attention_heads")
    expectWeightsError(base, sidecar: try sidecar(#"{"text_encoder_2_num_attention_heads": 5}"#), "5 heads", "48-wide")
    let zeros = try ModelWeights.fromSingleFile(refiner, path: "refiner", sidecar: try sidecar(#"{"force_zeros_for_empty_prompt": true}"#))
    #expect(zeros.forceZerosForEmptyPrompt)
}
