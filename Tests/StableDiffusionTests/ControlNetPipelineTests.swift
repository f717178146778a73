import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionControlNetPipeline run (Tools/make_pipeline_fixtures.py).
struct ControlNetCase: Decodable, Sendable, CustomTestStringConvertible {
    let run: DiffusersRun
    let output: DiffusersOutput
    let sampler: String
    let scales: [Float]
    let controls: [[UInt8]]
    var testDescription: String { "\(sampler), \(controls.count) ControlNet(s)" }

    private enum CodingKeys: String, CodingKey {
        case sampler, scales, controls
    }

    init(from decoder: any Decoder) throws {
        run = try DiffusersRun(from: decoder)
        output = try DiffusersOutput(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sampler = try container.decode(String.self, forKey: .sampler)
        scales = try container.decode([Float].self, forKey: .scales)
        controls = try container.decode([[UInt8]].self, forKey: .controls)
    }
}

@Test(arguments: try fixtureCases("controlnet.json", as: ControlNetCase.self))
func controlNetPipelineMatchesDiffusers(_ fixture: ControlNetCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model("tiny-sd1"))
    let net = try ControlNet.load(modelFixtures.appendingPathComponent("tiny-controlnet"))
    let settings = fixture.run.settings
    let controls = zip(fixture.controls, fixture.scales).map { bytes, scale in
        // Control images are [0, 1] (diffusers' control image processor does not normalise).
        Pipeline.Control(
            net: net, image: Pipeline.pixels(rgb: bytes, width: settings.width, height: settings.height).map { $0 / 2 + 0.5 },
            scale: scale)
    }
    let latents = try pipeline.sample(fixture.run, sampler: fixture.sampler, controls: controls)
    expectMatchesDiffusers(pipeline, latents: latents, run: fixture.run, output: fixture.output)
}
