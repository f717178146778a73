// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (fixture fields keep the names the Python scripts write)

import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionImg2ImgPipeline run (Tools/make_pipeline_fixtures.py).
struct Img2ImgCase: Decodable, Sendable, CustomTestStringConvertible {
    let model: String
    let sampler: String
    let strength: Double
    let guidance: Float
    let steps: Int
    let seed: UInt64
    let ids: [Int]
    let negative_ids: [Int]
    let init_: [UInt8]
    let width: Int
    let height: Int
    let latents_shape: [Int]
    let latents: [Float]
    let pixels: [UInt8]
    var testDescription: String { "\(model) \(sampler)" }

    enum CodingKeys: String, CodingKey {
        case model, sampler, strength, guidance, steps, seed, ids, negative_ids, width, height, latents_shape, latents, pixels
        case init_ = "init"
    }
}

@Test(arguments: try fixtureCases("img2img.json", as: Img2ImgCase.self))
func img2imgMatchesDiffusers(_ fixture: Img2ImgCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    let settings = try pipelineSettings(
        width: fixture.width, height: fixture.height, steps: fixture.steps, guidance: fixture.guidance, seed: fixture.seed,
        sampler: fixture.sampler)
    var calls = 0
    let latents = try pipeline.sample(
        conditional: pipeline.textEncoder([fixture.ids]),
        unconditional: pipeline.textEncoder([fixture.negative_ids]), settings: settings,
        image: Pipeline.pixels(rgb: fixture.init_, width: fixture.width, height: fixture.height),
        strength: fixture.strength,
        progress: { step, _ in
            calls = step
            return true
        })
    // strength 0.6 of 8 steps runs the last 4 steps; Heun and DPM2 make 2·8 − 1 = 15 calls and start at call 8.
    #expect(calls == (["heun", "dpm2"].contains(fixture.sampler) ? 7 : 4))
    expectMatchesDiffusers(
        pipeline, latents: latents, shape: fixture.latents_shape, latents: fixture.latents,
        pixels: fixture.pixels)
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
