import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionInpaintPipeline run (Tools/make_pipeline_fixtures.py).
struct InpaintCase: Decodable, Sendable, CustomTestStringConvertible {
    let unet: String
    let sampler: String
    let strength: Float
    let ids: [Int]
    let negative_ids: [Int]
    let image: [UInt8]
    let mask: [UInt8]
    let steps: Int
    let guidance: Float
    let seed: UInt64
    let width: Int
    let height: Int
    let latents_shape: [Int]
    let latents: [Float]
    let pixels: [UInt8]
    var testDescription: String { "\(unet) \(sampler) strength \(strength)" }
}

let inpaintCases: [InpaintCase] = fixtureCases("inpaint.json")

@Test(arguments: inpaintCases)
func inpaintingMatchesDiffusers(_ fixture: InpaintCase) throws {
    var weights = try NetworkFixtures.model("tiny-sd1")
    if fixture.unet == "inpaint" {
        let folder = modelFixtures.appendingPathComponent("tiny-inpaint-unet")
        weights.unetConfig = try JSONDecoder().decode(UNetConfig.self, from: Data(contentsOf: folder.appendingPathComponent("config.json")))
        weights.unet = try SafeTensorsFile(url: folder.appendingPathComponent("diffusion_pytorch_model.safetensors")).allTensors()
    }
    let pipeline = try Pipeline(weights: weights)
    var settings = Pipeline.Settings()
    settings.width = fixture.width
    settings.height = fixture.height
    settings.steps = fixture.steps
    settings.guidance = fixture.guidance
    settings.seed = fixture.seed
    settings.sampler = try SamplerName(parsing: fixture.sampler)
    let mask = Tensor(shape: [1, 1, fixture.height, fixture.width], values: fixture.mask.map { Float($0) / 255 })
    let latents = try pipeline.sample(conditional: pipeline.textEncoder([fixture.ids]),
                                      unconditional: pipeline.textEncoder([fixture.negative_ids]), settings: settings,
                                      image: Pipeline.pixels(rgb: fixture.image, width: fixture.width, height: fixture.height),
                                      strength: fixture.strength, mask: mask)
    expectMatchesDiffusers(pipeline, latents: latents, shape: fixture.latents_shape, latents: fixture.latents,
                           pixels: fixture.pixels)
}
