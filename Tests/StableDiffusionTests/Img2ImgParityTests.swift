import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionImg2ImgPipeline run (Tools/make_pipeline_fixtures.py).
struct Img2ImgCase: Decodable, Sendable, CustomTestStringConvertible {
    let run: DiffusersRun
    let output: DiffusersOutput
    let model: String
    let sampler: String
    let strength: Double
    let initImage: [UInt8]
    var testDescription: String { "\(model) \(sampler)" }

    private enum CodingKeys: String, CodingKey {
        case model, sampler, strength
        case initImage = "init"
    }

    init(from decoder: any Decoder) throws {
        run = try DiffusersRun(from: decoder)
        output = try DiffusersOutput(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        sampler = try container.decode(String.self, forKey: .sampler)
        strength = try container.decode(Double.self, forKey: .strength)
        initImage = try container.decode([UInt8].self, forKey: .initImage)
    }
}

@Test(arguments: try fixtureCases("img2img.json", as: Img2ImgCase.self))
func img2imgMatchesDiffusers(_ fixture: Img2ImgCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    let settings = fixture.run.settings
    var calls = 0
    let latents = try pipeline.sample(
        fixture.run, sampler: fixture.sampler,
        image: Pipeline.pixels(rgb: fixture.initImage, width: settings.width, height: settings.height),
        strength: fixture.strength,
        progress: { step, _ in
            calls = step
            return true
        })
    // strength 0.6 of 8 steps runs the last 4 steps; Heun and DPM2 make 2·8 − 1 = 15 calls and start at call 8.
    #expect(calls == (["heun", "dpm2"].contains(fixture.sampler) ? 7 : 4))
    expectMatchesDiffusers(pipeline, latents: latents, run: fixture.run, output: fixture.output)
}

@Test func img2imgRejectsBadStrengthAndSize() throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model("tiny-sd1"))
    var settings = Pipeline.Settings()
    settings.width = 24
    settings.height = 16
    settings.steps = 4
    let text = pipeline.textEncoder([Array(repeating: 1, count: 77)])
    let image = Tensor(zeros: [1, 3, 16, 24])
    #expect(throws: SamplingError.self) { try pipeline.sample(conditional: text, unconditional: text, settings: settings, image: image, strength: 0) }
    #expect(throws: SamplingError.self) {
        try pipeline.sample(conditional: text, unconditional: text, settings: settings, image: image, strength: 1.5)
    }
    #expect(throws: SamplingError.self) {
        try pipeline.sample(conditional: text, unconditional: text, settings: settings, image: Tensor(zeros: [1, 3, 16, 16]), strength: 0.5)
    }
}
