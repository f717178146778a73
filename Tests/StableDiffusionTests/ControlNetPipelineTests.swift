// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (fixture fields keep the names the Python scripts write)

import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionControlNetPipeline run (Tools/make_pipeline_fixtures.py).
struct ControlNetCase: Decodable, Sendable, CustomTestStringConvertible {
    let sampler: String
    let scales: [Float]
    let controls: [[UInt8]]
    let ids: [Int]
    let negative_ids: [Int]
    let steps: Int
    let guidance: Float
    let seed: UInt64
    let width: Int
    let height: Int
    let latents_shape: [Int]
    let latents: [Float]
    let pixels: [UInt8]
    var testDescription: String { "\(sampler), \(controls.count) ControlNet(s)" }
}

@Test(arguments: try fixtureCases("controlnet.json", as: ControlNetCase.self))
func controlNetPipelineMatchesDiffusers(_ fixture: ControlNetCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model("tiny-sd1"))
    let net = try ControlNet.load(modelFixtures.appendingPathComponent("tiny-controlnet"))
    let settings = try pipelineSettings(
        width: fixture.width, height: fixture.height, steps: fixture.steps, guidance: fixture.guidance, seed: fixture.seed,
        sampler: fixture.sampler)
    let controls = zip(fixture.controls, fixture.scales).map { bytes, scale in
        // Control images are [0, 1] (diffusers' control image processor does not normalise).
        Pipeline.Control(
            net: net, image: Pipeline.pixels(rgb: bytes, width: fixture.width, height: fixture.height).map { $0 / 2 + 0.5 },
            scale: scale)
    }
    let latents = try pipeline.sample(
        conditional: pipeline.textEncoder([fixture.ids]),
        unconditional: pipeline.textEncoder([fixture.negative_ids]), settings: settings,
        controls: controls)
    expectMatchesDiffusers(
        pipeline, latents: latents, shape: fixture.latents_shape, latents: fixture.latents,
        pixels: fixture.pixels)
}
