// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (fixture fields keep the names the Python scripts write)

import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers StableDiffusionInpaintPipeline run: on tiny-sd1 (Tools/make_pipeline_fixtures.py, inpaint.json)
/// or on the second, differently shaped model (Tools/make_inpaint_fixtures.py, inpaint2.json: a 3-level VAE,
/// other UNet widths, own seeds; every sampler, binary and soft masks, strengths 1, 0.75 and 0.5, batches of
/// one and two, the 9-channel UNet and a 4-channel one), which also names its model, mask kind and batch.
struct InpaintCase: Decodable, Sendable, CustomTestStringConvertible {
    let run: DiffusersRun
    let output: DiffusersOutput
    let model: String?
    let unet_folder: String?
    let mask_kind: String?
    let unet: String
    let sampler: String
    let strength: Double
    let image: [UInt8]
    let mask: [UInt8]
    var testDescription: String {
        let settings = run.settings
        return "\(unet_folder ?? model ?? unet) \(sampler) \(mask_kind ?? "binary") strength \(strength) batch \(settings.batch) "
            + "\(settings.width)x\(settings.height) cfg \(settings.guidance)"
    }

    private enum CodingKeys: String, CodingKey {
        case model, unet_folder, mask_kind, unet, sampler, strength, image, mask
    }

    init(from decoder: any Decoder) throws {
        run = try DiffusersRun(from: decoder)
        output = try DiffusersOutput(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        unet_folder = try container.decodeIfPresent(String.self, forKey: .unet_folder)
        mask_kind = try container.decodeIfPresent(String.self, forKey: .mask_kind)
        unet = try container.decode(String.self, forKey: .unet)
        sampler = try container.decode(String.self, forKey: .sampler)
        strength = try container.decode(Double.self, forKey: .strength)
        image = try container.decode([UInt8].self, forKey: .image)
        mask = try container.decode([UInt8].self, forKey: .mask)
    }
}

/// Swaps in the UNet of a fixture folder (config and weights).
private func swapUNet(_ weights: inout ModelWeights, folder name: String) throws {
    let folder = modelFixtures.appendingPathComponent(name)
    weights.unetConfig = try JSONDecoder().decode(UNetConfig.self, from: Data(contentsOf: folder.appendingPathComponent("config.json")))
    weights.unet = try SafeTensorsFile(url: folder.appendingPathComponent("diffusion_pytorch_model.safetensors")).allTensors()
}

/// Runs the fixture's inpainting through `pipeline` and compares it with diffusers' latents and pixels.
private func expectInpaintingMatches(_ pipeline: Pipeline, _ fixture: InpaintCase) throws {
    let settings = fixture.run.settings
    let mask = Tensor(shape: [1, 1, settings.height, settings.width], values: fixture.mask.map { Float($0) / 255 })
    let latents = try pipeline.sample(
        fixture.run, sampler: fixture.sampler,
        image: Pipeline.pixels(rgb: fixture.image, width: settings.width, height: settings.height),
        strength: fixture.strength, mask: mask)
    expectMatchesDiffusers(pipeline, latents: latents, run: fixture.run, output: fixture.output)
}

@Test(arguments: try fixtureCases("inpaint.json", as: InpaintCase.self))
func inpaintingMatchesDiffusers(_ fixture: InpaintCase) throws {
    var weights = try NetworkFixtures.model("tiny-sd1")
    if fixture.unet == "inpaint" { try swapUNet(&weights, folder: "tiny-inpaint-unet") }
    try expectInpaintingMatches(try Pipeline(weights: weights), fixture)
}

@Test(arguments: try fixtureCases("inpaint2.json", as: InpaintCase.self))
func secondInpaintingModelMatchesDiffusers(_ fixture: InpaintCase) throws {
    var weights = try ModelWeights.load(modelFixtures.appendingPathComponent(try #require(fixture.model)))
    if let folder = fixture.unet_folder { try swapUNet(&weights, folder: folder) }
    #expect(weights.isInpainting == (fixture.unet_folder == nil))
    let pipeline = try Pipeline(weights: weights)
    #expect(pipeline.latentScale == 4, "the second fixture's VAE has three levels")
    try expectInpaintingMatches(pipeline, fixture)
}

@Test func strengthKeepsStepsAsDiffusersCountsThem() {
    // int(steps * strength) in double precision: in Float, 50 × 0.58 rounds up to 29 kept steps.
    #expect(Pipeline.firstStep(steps: 50, strength: 0.58) == 22)
    #expect(Pipeline.firstStep(steps: 100, strength: 0.53) == 47)
    #expect(Pipeline.firstStep(steps: 20, strength: 1) == 0)
    #expect(Pipeline.firstStep(steps: 6, strength: 0.75) == 2)
}
