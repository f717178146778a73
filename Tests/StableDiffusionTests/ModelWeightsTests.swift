import Foundation
import StableDiffusion
import Tensors
import Testing

/// Every tensor of `a` equals `b`'s bit for bit, and both have the same names.
func expectIdentical(_ a: [String: Tensor], _ b: [String: Tensor], _ what: String) {
    #expect(Set(a.keys) == Set(b.keys), "\(what): names differ: \(Set(a.keys).symmetricDifference(b.keys).sorted().prefix(6))")
    for (name, tensor) in a {
        guard let other = b[name] else { continue }
        #expect(tensor.shape == other.shape, "\(what): \(name) shape \(tensor.shape) vs \(other.shape)")
        if tensor.shape == other.shape {
            let same = tensor.scalars == other.scalars
            #expect(same, "\(what): \(name) differs")
        }
    }
}

@Test func diffusersFolderAndSingleFileGiveIdenticalTensors() throws {
    let folder = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1"))
    let single = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1.safetensors"))
    let pickle = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1.ckpt"))
    #expect(folder.family == .sd1 && single.family == .sd1 && pickle.family == .sd1)
    expectIdentical(folder.unet, single.unet, "unet")
    expectIdentical(folder.vae, single.vae, "vae")
    expectIdentical(folder.textEncoder, single.textEncoder, "text encoder")
    expectIdentical(folder.unet, pickle.unet, "unet (.ckpt)")
    expectIdentical(folder.vae, pickle.vae, "vae (.ckpt)")
    expectIdentical(folder.textEncoder, pickle.textEncoder, "text encoder (.ckpt)")
    #expect(pickle.unetConfig == single.unetConfig && pickle.textEncoderConfig == single.textEncoderConfig)
    #expect(folder.unet.count > 300 && folder.vae.count > 50 && folder.textEncoder.count > 30)

    // The configs inferred from shapes (+ the sidecar file) agree with diffusers' own.
    for config in [folder.unetConfig, single.unetConfig] {
        #expect(config.blockOutChannels == [8, 16, 16])
        #expect(config.layersPerBlock == 2)
        #expect(config.downBlockTypes == ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"])
        #expect(config.upBlockTypes == ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
        #expect(config.crossAttentionDim == 16 && config.inChannels == 4 && config.outChannels == 4)
        #expect(!config.useLinearProjection && config.normNumGroups == 4 && config.heads(block: 1) == 2)
    }
    #expect(single.vaeConfig.blockOutChannels == folder.vaeConfig.blockOutChannels)
    #expect(single.vaeConfig.layersPerBlock == folder.vaeConfig.layersPerBlock)
    #expect(single.vaeConfig.normNumGroups == folder.vaeConfig.normNumGroups)
    // The end id is not in a single file (the original configs' 2 is assumed); only SDXL's pooled output reads it.
    var textConfig = single.textEncoderConfig
    textConfig.eosTokenID = folder.textEncoderConfig.eosTokenID
    #expect(single.textEncoderConfig.eosTokenID == 2 && textConfig == folder.textEncoderConfig)
    #expect(folder.padTokenID == 49407 && single.padTokenID == 49407)
    #expect(!folder.isInpainting && folder.schedulerConfig.predictionType == "epsilon")
}

@Test func sd2SingleFileSplitsFusedProjectionsAndDropsTheLastLayer() throws {
    let folder = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd2"))
    let single = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd2.safetensors"))
    #expect(folder.family == .sd2 && single.family == .sd2)
    expectIdentical(folder.unet, single.unet, "unet")
    expectIdentical(folder.vae, single.vae, "vae")
    expectIdentical(folder.textEncoder, single.textEncoder, "text encoder")
    #expect(single.textEncoderConfig.numHiddenLayers == 3 && single.textEncoderConfig.hiddenAct == "gelu")
    #expect(single.unetConfig.useLinearProjection && single.unetConfig.crossAttentionDim == 24)
    #expect((0..<3).map(single.unetConfig.heads(block:)) == [2, 4, 4])
    #expect(single.schedulerConfig.predictionType == "v_prediction", "from the sidecar config file")
    #expect(folder.schedulerConfig.predictionType == "v_prediction")
    #expect(folder.padTokenID == 0 && single.padTokenID == 0)
    let forced = try ModelWeights.load(
        modelFixtures.appendingPathComponent("tiny-sd2.safetensors"),
        options: .init(predictionType: "epsilon"))
    #expect(forced.schedulerConfig.predictionType == "epsilon", "a flag overrides the config file")
}

@Test func inpaintingIsDetectedFromNineInputChannels() throws {
    let file = try SafeTensorsFile(url: modelFixtures.appendingPathComponent("tiny-sd1.safetensors"))
    var tensors = try file.allTensors()
    let key = "model.diffusion_model.input_blocks.0.0.weight"
    tensors[key] = Tensor(zeros: [8, 9, 3, 3])
    let model = try ModelWeights.fromSingleFile(tensors, path: "inpainting")
    #expect(model.isInpainting && model.unetConfig.inChannels == 9)
    tensors[key] = nil
    tensors = tensors.filter { !$0.key.hasPrefix("model.diffusion_model.") }
    #expect(throws: WeightsError.self) { try ModelWeights.fromSingleFile(tensors, path: "no-unet") }
}

@Test func fp16VariantIsWidenedOnce() throws {
    let full = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1"))
    let half = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1"), options: .init(preferFP16Variant: true))
    #expect(Set(full.vae.keys) == Set(half.vae.keys))
    for (name, tensor) in full.vae {
        let same = half.vae[name]!.scalars == tensor.scalars.map { Float(Float16($0)) }
        #expect(same, "\(name) is not the fp16 rounding of the fp32 weights")
    }
}
