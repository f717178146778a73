import Foundation
import StableDiffusion
import Tensors
import Testing

/// A component's tensors rounded to `element`, as an fp16 or bf16 download stores them.
private func narrowed(_ tensors: [String: Tensor], to element: ElementType) -> [String: Tensor] {
    tensors.mapValues { $0.narrowed(to: element) }
}

/// A component's tensors widened to Float32: the same values, the way the engine held every model before.
private func widened(_ tensors: [String: Tensor]) -> [String: Tensor] { tensors.mapValues { $0.widened() } }

/// Whether two tensors hold the same shape and bits (a Bool, so that a failure does not print both tensors).
private func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern)
}

/// Deterministic values in ±scale.
private func values(_ count: Int, seed: UInt32, scale: Float = 1) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return (Float(state >> 8) / Float(1 << 24) * 2 - 1) * scale
    }
}

/// The same tiny model with its weights resident as halves and with them widened beforehand gives bit-identical UNet,
/// text encoder and VAE outputs: widening is exact and the products see the same Float32 weights either way.
@Test(arguments: [ElementType.float16, .bfloat16])
func halfResidentModelEqualsWidenedModelBitForBit(element: ElementType) throws {
    let model = try NetworkFixtures.model("tiny-sd1")
    let unetHalves = narrowed(model.unet, to: element)
    #expect(unetHalves.values.allSatisfy { $0.element == element })
    let config = model.unetConfig
    let sample = Tensor(shape: [2, config.inChannels, 16, 16], values: values(2 * config.inChannels * 256, seed: 1))
    let context = Tensor(shape: [2, 7, config.crossAttentionDim], values: values(14 * config.crossAttentionDim, seed: 2))
    let resident = try UNet(config: config, weights: unetHalves)(sample, timestep: 421, context: context)
    let wide = try UNet(config: config, weights: widened(unetHalves))(sample, timestep: 421, context: context)
    #expect(resident.shape == sample.shape && resident.absMax() > 0)
    #expect(sameBits(resident, wide), "UNet output with \(element) weights differs from the widened weights' by \(resident.maxAbsDifference(wide))")

    let textHalves = narrowed(model.textEncoder, to: element)
    let ids = [[0, 320, 1125, 539, 7, 7, 7].map { $0 % model.textEncoderConfig.vocabSize }]
    let text = try TextEncoder(config: model.textEncoderConfig, weights: textHalves)(ids, clipSkip: 2)
    #expect(sameBits(text, try TextEncoder(config: model.textEncoderConfig, weights: widened(textHalves))(ids, clipSkip: 2)))

    let vaeHalves = narrowed(model.vae, to: element)
    let latents = Tensor(shape: [1, model.vaeConfig.latentChannels, 8, 8], values: values(model.vaeConfig.latentChannels * 64, seed: 3))
    let decoded = try VAE(config: model.vaeConfig, weights: vaeHalves).decode(latents)
    #expect(sameBits(decoded, try VAE(config: model.vaeConfig, weights: widened(vaeHalves)).decode(latents)))
}

/// The bundled demo model is stored as fp16: its weights stay resident as halves (norms and biases widened by the
/// layers), and its UNet, wider than the fixtures' (Winograd and the whole-layer products run), gives what the same
/// model widened beforehand gives, bit for bit.
@Test func demoModelRunsOnResidentHalvesAsOnWidenedWeights() throws {
    let demo = try ModelWeights.load(try BundledModels.resolve(BundledModels.demo))
    #expect(demo.unet["conv_in.weight"]?.element == .float16)
    #expect(demo.textEncoder["embeddings.token_embedding.weight"]?.element == .float16)
    let config = demo.unetConfig
    let side = config.sampleSize
    let sample = Tensor(shape: [2, config.inChannels, side, side], values: values(2 * config.inChannels * side * side, seed: 5))
    let context = Tensor(shape: [2, 77, config.crossAttentionDim], values: values(154 * config.crossAttentionDim, seed: 6, scale: 0.5))
    let resident = try UNet(config: config, weights: demo.unet)(sample, timestep: 700, context: context)
    let wide = try UNet(config: config, weights: widened(demo.unet))(sample, timestep: 700, context: context)
    #expect(sameBits(resident, wide), "differs by \(resident.maxAbsDifference(wide))")
}

/// Loaders keep F16 and BF16 as stored: a diffusers folder's fp16 variant, safetensors written as halves (round trip,
/// bytes unchanged), and a `.ckpt`'s half and bfloat16 storages; float32 files stay Float32.
@Test func loadersKeepHalvesAsStored() throws {
    let folder = modelFixtures.appendingPathComponent("tiny-sd1")
    let half = try ModelWeights.load(folder, options: .init(preferFP16Variant: true))
    #expect(half.vae.values.allSatisfy { $0.element == .float16 })
    #expect(try ModelWeights.load(folder).vae.values.allSatisfy { $0.element == .float32 })

    let source = Tensor(shape: [3, 5], values: values(15, seed: 7))
    let tensors = ["a.f16": source.narrowed(to: .float16), "b.bf16": source.narrowed(to: .bfloat16), "c.f32": source]
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("halves-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try SafeTensorsFile.write(tensors, to: url)
    let file = try SafeTensorsFile(url: url)
    #expect(file.entries["a.f16"]?.dtype == .f16 && file.entries["b.bf16"]?.dtype == .bf16 && file.entries["c.f32"]?.dtype == .f32)
    for (name, tensor) in tensors {
        let read = try file.tensor(name)
        #expect(read.element == tensor.element && read.shape == tensor.shape)
        #expect(read.withUnsafeRawBytes { Array($0) } == tensor.withUnsafeRawBytes { Array($0) }, "\(name) bytes")
    }

    let checkpoint = try TorchCheckpoint.load(PickleFixtures.url("good.ckpt"))
    #expect(checkpoint["special.f16"]?.element == .float16 && checkpoint["special.bf16"]?.element == .bfloat16)
    #expect(checkpoint["model.diffusion_model.input_blocks.0.0.weight"]?.element == .float32)
    #expect(checkpoint["cond_stage_model.position_ids"]?.element == .float32, "integers are converted to Float32")
}

/// SD 2.x single files fuse q/k/v into one `in_proj`; split as halves, each part holds its rows of the fused tensor.
@Test func fusedProjectionsSplitAsHalves() throws {
    let fused = Tensor(shape: [12, 4], values: values(48, seed: 9)).narrowed(to: .float16)
    let split = CheckpointKeys.openCLIPTensors(["transformer.resblocks.0.attn.in_proj_weight": fused], layers: 1)
    let query = try #require(split["encoder.layers.0.self_attn.q_proj.weight"])
    let value = try #require(split["encoder.layers.0.self_attn.v_proj.weight"])
    #expect(query.element == .float16 && query.shape == [4, 4])
    #expect(value.scalars == Array(fused.scalars[32..<48]))
}

/// `farm bench`'s random weights are fp16, as real downloads: the UNet costs two bytes a parameter.
@Test func randomWeightsAreHalvesByDefault() throws {
    let real = try NetworkFixtures.model("tiny-sd1")
    let random = ModelWeights.random(unet: real.unetConfig, vae: real.vaeConfig, textEncoder: real.textEncoderConfig)
    #expect([random.unet, random.vae, random.textEncoder].allSatisfy { $0.values.allSatisfy { $0.element == .float16 } })
    let single = ModelWeights.random(unet: real.unetConfig, vae: real.vaeConfig, textEncoder: real.textEncoderConfig, element: .float32)
    #expect(single.unet.values.allSatisfy { $0.element == .float32 })
    #expect(random.residentBytes * 2 == single.residentBytes && random.residentBytes > 0)
    #expect(random.unet.keys.allSatisfy { random.unet[$0]!.scalars == single.unet[$0]!.narrowed(to: .float16).scalars })
}
