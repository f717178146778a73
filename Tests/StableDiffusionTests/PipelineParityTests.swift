import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionPipeline run (Tools/make_pipeline_fixtures.py).
struct PipelineCase: Decodable, Sendable, CustomTestStringConvertible {
    let run: DiffusersRun
    let output: DiffusersOutput
    let model: String
    let sampler: String
    var testDescription: String { "\(model) \(sampler)" }

    private enum CodingKeys: String, CodingKey {
        case model, sampler
    }

    init(from decoder: any Decoder) throws {
        run = try DiffusersRun(from: decoder)
        output = try DiffusersOutput(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        sampler = try container.decode(String.self, forKey: .sampler)
    }
}

@Test(arguments: try fixtureCases("pipelines.json", as: PipelineCase.self))
func samplerMatchesDiffusersPipeline(_ fixture: PipelineCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    var steps = 0
    let latents = try pipeline.sample(
        fixture.run, sampler: fixture.sampler,
        progress: { step, total in
            steps = step
            return step <= total
        })
    // One progress call per UNet call: PLMS needs steps + 1, Heun and DPM2 2·steps − 1.
    let calls =
        [
            "pndm": fixture.run.settings.steps + 1, "heun": 2 * fixture.run.settings.steps - 1,
            "dpm2": 2 * fixture.run.settings.steps - 1,
        ][fixture.sampler] ?? fixture.run.settings.steps
    #expect(steps == calls)
    expectMatchesDiffusers(pipeline, latents: latents, run: fixture.run, output: fixture.output)
}

/// Final latents of `run`'s shape within 1e-3 of diffusers' and decoded 8-bit pixels within 2/255.
func expectMatchesDiffusers(_ pipeline: Pipeline, latents: Tensor, run: DiffusersRun, output: DiffusersOutput) {
    #expect(latents.shape == run.latentsShape)
    let latentError = zip(latents.scalars, output.latents).map { abs($0 - $1) }.max() ?? .infinity
    #expect(latentError < 1e-3, "final latents differ by \(latentError)")
    let decoded = pipeline.decode(latents).flatMap { $0 }
    #expect(decoded.count == output.pixels.count)
    let pixelError = zip(decoded, output.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
    #expect(pixelError <= 2, "pixels differ by up to \(pixelError)/255")
}
