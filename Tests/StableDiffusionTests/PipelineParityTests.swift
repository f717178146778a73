// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (fixture fields keep the names the Python scripts write)

import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionPipeline run (Tools/make_pipeline_fixtures.py).
struct PipelineCase: Decodable, Sendable, CustomTestStringConvertible {
    let model: String
    let sampler: String
    let settings: FixtureSettings
    let ids: [Int]
    let negative_ids: [Int]
    let latents_shape: [Int]
    let latents: [Float]
    let pixels: [UInt8]
    var testDescription: String { "\(model) \(sampler)" }
}

@Test(arguments: try fixtureCases("pipelines.json", as: PipelineCase.self))
func samplerMatchesDiffusersPipeline(_ fixture: PipelineCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    let settings = try fixture.settings.pipeline(sampler: fixture.sampler)
    var steps = 0
    let latents = try pipeline.sample(
        conditional: pipeline.textEncoder([fixture.ids]),
        unconditional: pipeline.textEncoder([fixture.negative_ids]),
        settings: settings,
        progress: { step, total in
            steps = step
            return step <= total
        })
    // One progress call per UNet call: PLMS needs steps + 1, Heun and DPM2 2·steps − 1.
    let calls =
        [
            "pndm": fixture.settings.steps + 1, "heun": 2 * fixture.settings.steps - 1,
            "dpm2": 2 * fixture.settings.steps - 1,
        ][fixture.sampler] ?? fixture.settings.steps
    #expect(steps == calls)
    expectMatchesDiffusers(
        pipeline, latents: latents, shape: fixture.latents_shape, latents: fixture.latents,
        pixels: fixture.pixels)
}

/// Final latents within 1e-3 of diffusers' and decoded 8-bit pixels within 2/255.
func expectMatchesDiffusers(_ pipeline: Pipeline, latents: Tensor, shape: [Int], latents expected: [Float], pixels: [UInt8]) {
    #expect(latents.shape == shape)
    let latentError = zip(latents.scalars, expected).map { abs($0 - $1) }.max() ?? .infinity
    #expect(latentError < 1e-3, "final latents differ by \(latentError)")
    let decoded = pipeline.decode(latents).flatMap { $0 }
    #expect(decoded.count == pixels.count)
    let pixelError = zip(decoded, pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
    #expect(pixelError <= 2, "pixels differ by up to \(pixelError)/255")
}
