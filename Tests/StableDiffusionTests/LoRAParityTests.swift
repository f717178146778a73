import Foundation
import StableDiffusion
import Tensors
import Testing

/// Fixtures/loras/: the LoRA files Tools/make_lora_fixtures.py writes.
let loraFixtures = fixtureFolder.appendingPathComponent("loras")

/// One diffusers run with LoRAs loaded (`load_lora_weights`, `set_adapters`) on a tiny model (Fixtures/lora.json).
struct LoRACase: Decodable, Sendable, CustomTestStringConvertible {
    /// One LoRA of the run and its weight.
    struct Applied: Decodable, Sendable {
        let name: String
        let weight: Float
    }

    let run: DiffusersRun
    let output: DiffusersOutput
    let model: String
    let sampler: String
    let loras: [Applied]
    /// Per LoRA file: how many layers of each network diffusers gave it (`unet`, `text_encoder`, `text_encoder_2`).
    let injected: [[String: Int]]
    /// The same run without LoRAs.
    let baseLatents: [Float]
    let ids2: [Int]?
    let negativeIDs2: [Int]?
    var testDescription: String { "\(model) \(sampler) " + loras.map { "\($0.name):\($0.weight)" }.joined(separator: " ") }

    private enum CodingKeys: String, CodingKey {
        case model, sampler, loras, injected
        case baseLatents = "base_latents"
        case ids2 = "ids_2"
        case negativeIDs2 = "negative_ids_2"
    }

    init(from decoder: any Decoder) throws {
        run = try DiffusersRun(from: decoder)
        output = try DiffusersOutput(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        sampler = try container.decode(String.self, forKey: .sampler)
        loras = try container.decode([Applied].self, forKey: .loras)
        injected = try container.decode([[String: Int]].self, forKey: .injected)
        baseLatents = try container.decode([Float].self, forKey: .baseLatents)
        ids2 = try container.decodeIfPresent([Int].self, forKey: .ids2)
        negativeIDs2 = try container.decodeIfPresent([Int].self, forKey: .negativeIDs2)
    }

    /// The case's LoRA files with their weights.
    func weighted() throws -> [WeightedLoRA] {
        try loras.map { WeightedLoRA(file: try LoRAFile.load(loraFixtures.appendingPathComponent($0.name + ".safetensors")), weight: $0.weight) }
    }

    /// Runs the case's prompt through `pipeline` as diffusers did (SDXL: both encoders from both token rows).
    func sample(_ pipeline: Pipeline) throws -> Tensor {
        guard let ids2, let negativeIDs2 else { return try pipeline.sample(run, sampler: sampler) }
        return try pipeline.sample(
            conditional: pipeline.encodeXL(tokens: [[run.ids], [ids2]]),
            unconditional: pipeline.encodeXL(tokens: [[run.negativeIDs], [negativeIDs2]]),
            settings: run.settings.pipeline(sampler: sampler))
    }
}

/// The largest difference between `tensor`'s values and `expected`.
private func largestDifference(_ tensor: Tensor, _ expected: [Float]) -> Float {
    guard tensor.count == expected.count else { return .infinity }
    return zip(tensor.scalars, expected).map { abs($0 - $1) }.max() ?? .infinity
}

@Test func loraFixtureSetIsComplete() throws {
    let cases = try fixtureCases("lora.json", as: LoRACase.self)
    #expect(cases.count == 6)
    #expect(cases.contains { $0.loras.count == 2 } && cases.contains { $0.loras.contains { $0.weight < 0 } })
    #expect(cases.filter { $0.model == "tiny-sdxl" }.count == 2)
}

@Test(arguments: try fixtureCases("lora.json", as: LoRACase.self))
func loraRenderMatchesDiffusers(_ fixture: LoRACase) throws {
    let model = try ModelWeights.load(modelFixtures.appendingPathComponent(fixture.model))
    let base = try fixture.sample(Pipeline(weights: model))
    #expect(largestDifference(base, fixture.baseLatents) < 1e-3, "the run without LoRAs already differs")
    let (patched, report) = try model.applying(fixture.weighted())
    #expect(report.total > 0)
    let pipeline = try Pipeline(weights: patched)
    let latents = try fixture.sample(pipeline)
    #expect(largestDifference(latents, fixture.baseLatents) > 0.05, "the LoRAs barely change the render: the test would not see them")
    expectMatchesDiffusers(pipeline, latents: latents, run: fixture.run, output: fixture.output)
}

/// Each file reaches exactly the layers diffusers gave it, in every network; for the SDXL file (UNet in SGM names, both
/// text encoders) that is every layer the file holds.
@Test(arguments: try fixtureCases("lora.json", as: LoRACase.self))
func loraReachesTheLayersItTargets(_ fixture: LoRACase) throws {
    let model = try ModelWeights.load(modelFixtures.appendingPathComponent(fixture.model))
    for (lora, injected) in zip(try fixture.weighted(), fixture.injected) {
        let (_, report) = try model.applying([lora])
        #expect(report.unet.count == injected["unet"])
        #expect(report.textEncoder.count == injected["text_encoder"])
        #expect(report.textEncoder2.count == (injected["text_encoder_2"] ?? 0))
        let layers = try lora.file.modules(for: model).count
        #expect(report.total == layers && report.layersApplied == layers)
        if fixture.model == "tiny-sdxl" { #expect(report.textEncoder2.count > 0 && report.unet.contains { $0.hasPrefix("mid_block") }) }
    }
}

/// Patching keeps each weight's stored precision and shares every other tensor with the unpatched model.
@Test func loraPatchKeepsHalvesAndSharesTheRest() throws {
    var model = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1"))
    model.unet = model.unet.mapValues { $0.rank >= 2 ? $0.narrowed(to: .float16) : $0 }
    let file = try LoRAFile.load(loraFixtures.appendingPathComponent("sd1-kohya-locon.safetensors"))
    let (patched, report) = try model.applying([WeightedLoRA(file: file, weight: 0.8)])
    for layer in report.unet { #expect(patched.unet[layer + ".weight"]?.element == .float16) }
    let untouched = "down_blocks.0.resnets.0.norm1.weight"
    #expect(patched.unet[untouched]?.scalars == model.unet[untouched]?.scalars)
}
