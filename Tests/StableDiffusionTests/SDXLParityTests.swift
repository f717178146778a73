import Foundation
import StableDiffusion
import Tensors
import Testing

/// Tools/make_sdxl_fixtures.py's runs of diffusers' SDXL pipelines on the tiny SDXL (Fixtures/sdxl.json).
struct SDXLFixture: Decodable, Sendable {
    /// A prompt as token rows for both tokenizers (the first pads with the end token, the second with `!`).
    struct Prompt: Decodable, Sendable {
        let ids: [Int]
        let ids2: [Int]
        /// diffusers' encode_prompt output for the prompt: both encoders' penultimate states side by side, pooled.
        let embeds: [Float]?
        let embedsShape: [Int]?
        let pooled: [Float]?

        enum CodingKeys: String, CodingKey {
            case ids, embeds, pooled
            case ids2 = "ids_2"
            case embedsShape = "embeds_shape"
        }
    }

    /// One pipeline run: settings, the extra inputs it names, and diffusers' final latents and pixels.
    struct Run: Decodable, Sendable, CustomTestStringConvertible {
        let sampler: String
        let steps: Int
        let guidance: Float
        let seed: UInt64
        let batch: Int?
        let strength: Double?
        let zeroNegative: Bool?
        let unet: String?
        let scale: Float?
        let switchAt: Double?
        let handed: [Float]?
        let latentsShape: [Int]
        let latents: [Float]
        let pixels: [UInt8]
        var testDescription: String {
            [sampler, unet, strength.map { "strength \($0)" }, switchAt.map { "switch \($0)" }, zeroNegative == true ? "zero negative" : nil]
                .compactMap { $0 }.joined(separator: ", ")
        }

        enum CodingKeys: String, CodingKey {
            case sampler, steps, guidance, seed, batch, strength, unet, scale, handed, latents, pixels
            case zeroNegative = "zero_negative"
            case switchAt = "switch"
            case latentsShape = "latents_shape"
        }
    }

    /// The refiner's own encodings of the prompt (the second encoder alone).
    struct RefinerPrompt: Decodable, Sendable {
        let embeds: [Float]
        let pooled: [Float]
    }

    let prompt: Prompt
    let negative: Prompt
    let width: Int
    let height: Int
    let txt2img: [Run]
    let img2img: [Run]
    let inpaint: [Run]
    let controlnet: [Run]
    let refiner: [Run]
    let refinerPrompt: RefinerPrompt
    let initImage: [UInt8]
    let mask: [UInt8]
    let control: [UInt8]
    /// The first txt2img case's latents decoded by models/tiny-sdxl-vae (the `--vae` override).
    let alternativeVAEPixels: [UInt8]

    enum CodingKeys: String, CodingKey {
        case prompt, negative, width, height, txt2img, img2img, inpaint, controlnet, refiner, mask, control
        case refinerPrompt = "refiner_prompt"
        case alternativeVAEPixels = "alternative_vae_pixels"
        case initImage = "init"
    }

    /// The fixture, decoded once.
    static let shared = Result { try decodeFixture("sdxl.json", as: SDXLFixture.self) }

    /// The cases of one kind; throws when there are none, so a parameterised test cannot pass without checking.
    static func runs(_ kind: KeyPath<SDXLFixture, [Run]>) throws -> [Run] {
        let runs = try shared.get()[keyPath: kind]
        guard !runs.isEmpty else { throw FixtureError(file: "sdxl.json", reason: "holds no cases of a kind the tests read") }
        return runs
    }

    /// A tiny SDXL model folder of Fixtures/models.
    static func model(_ name: String) throws -> ModelWeights {
        try ModelWeights.load(modelFixtures.appendingPathComponent(name))
    }

    /// Settings of `run` at the fixture's size.
    func settings(_ run: Run) throws -> Pipeline.Settings {
        var settings = Pipeline.Settings()
        (settings.width, settings.height, settings.steps, settings.guidance) = (width, height, run.steps, run.guidance)
        (settings.seed, settings.batch) = (run.seed, run.batch ?? 1)
        settings.sampler = try SamplerName(parsing: run.sampler)
        return settings
    }

    /// The prompt and negative prompt through `pipeline`'s encoders from the fixture's token rows (the refiner,
    /// with one encoder, reads the second tokenizer's rows).
    func conditioning(_ pipeline: Pipeline) -> (TextConditioning, TextConditioning) {
        func rows(_ prompt: Prompt) -> [[[Int]]] { pipeline.textEncoders.count == 2 ? [[prompt.ids], [prompt.ids2]] : [[prompt.ids2]] }
        return (pipeline.encodeXL(tokens: rows(prompt)), pipeline.encodeXL(tokens: rows(negative)))
    }
}

/// Largest absolute difference between `tensor`'s values and `expected`, infinity when the counts differ.
private func difference(_ tensor: Tensor, _ expected: [Float]) -> Float {
    guard tensor.count == expected.count else { return .infinity }
    return zip(tensor.scalars, expected).map { abs($0 - $1) }.max() ?? .infinity
}

/// Final latents within 1e-3 of diffusers' and the decoded 8-bit pixels within 2/255.
private func expectMatches(_ pipeline: Pipeline, _ latents: Tensor, _ run: SDXLFixture.Run) {
    #expect(latents.shape == run.latentsShape)
    let latentError = difference(latents, run.latents)
    #expect(latentError < 1e-3, "final latents differ by \(latentError)")
    let decoded = pipeline.decode(latents).flatMap { $0 }
    #expect(decoded.count == run.pixels.count)
    let pixelError = zip(decoded, run.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
    #expect(pixelError <= 2, "pixels differ by up to \(pixelError)/255")
}

@Test func sdxlFixtureSetIsComplete() throws {
    let fixture = try SDXLFixture.shared.get()
    #expect(Set(fixture.txt2img.map(\.sampler)).count >= 6)
    #expect(fixture.txt2img.count == 11 && fixture.img2img.count == 3 && fixture.inpaint.count == 4)
    #expect(fixture.controlnet.count == 2 && fixture.refiner.count == 3)
    #expect(fixture.width != fixture.height)
}

@Test func sdxlFolderLoadsBothEncodersAndTheRefinerItsOne() throws {
    let base = try SDXLFixture.model("tiny-sdxl")
    #expect(base.family == .sdxl && base.forceZerosForEmptyPrompt)
    #expect(base.textEncoderConfig.hiddenSize == 32 && base.textEncoderConfig.hiddenAct == "quick_gelu" && base.padTokenID == 49407)
    #expect(base.textEncoder2?.config.hiddenSize == 48 && base.textEncoder2?.padTokenID == 0)
    #expect(base.textEncoder2?.weights["text_projection.weight"]?.shape == [40, 48])
    #expect(base.vaeConfig.scalingFactor == 0.13025 && base.unetConfig.isXL)
    let refiner = try SDXLFixture.model("tiny-sdxl-refiner")
    #expect(refiner.family == .sdxlRefiner && !refiner.forceZerosForEmptyPrompt && refiner.textEncoder2 == nil)
    #expect(refiner.textEncoderConfig.hiddenSize == 48 && refiner.padTokenID == 0)
    let pipeline = try Pipeline(weights: base)
    #expect(pipeline.textEncoders.count == 2 && pipeline.latentScale == 4)
}

@Test func sdxlTextEncodingMatchesDiffusers() throws {
    let fixture = try SDXLFixture.shared.get()
    let pipeline = try Pipeline(weights: try SDXLFixture.model("tiny-sdxl"))
    let (conditional, _) = fixture.conditioning(pipeline)
    #expect(conditional.context.shape == fixture.prompt.embedsShape)
    #expect(difference(conditional.context, fixture.prompt.embeds ?? []) < 1e-4)
    #expect(difference(try #require(conditional.pooled), fixture.prompt.pooled ?? []) < 1e-4)
    let refiner = try Pipeline(weights: try SDXLFixture.model("tiny-sdxl-refiner"))
    let (refined, _) = fixture.conditioning(refiner)
    #expect(difference(refined.context, fixture.refinerPrompt.embeds) < 1e-4)
    #expect(difference(try #require(refined.pooled), fixture.refinerPrompt.pooled) < 1e-4)
}

@Test(arguments: try SDXLFixture.runs(\.txt2img))
func sdxlTextToImageMatchesDiffusers(_ run: SDXLFixture.Run) throws {
    let fixture = try SDXLFixture.shared.get()
    let pipeline = try Pipeline(weights: try SDXLFixture.model("tiny-sdxl"))
    let (conditional, unconditional) = fixture.conditioning(pipeline)
    let zeros = TextConditioning(context: Tensor(zeros: conditional.context.shape), pooled: conditional.pooled.map { Tensor(zeros: $0.shape) })
    let negative = run.zeroNegative == true ? zeros : unconditional
    let latents = try pipeline.sample(conditional: conditional, unconditional: negative, settings: try fixture.settings(run))
    expectMatches(pipeline, latents, run)
}

@Test(arguments: try SDXLFixture.runs(\.img2img))
func sdxlImageToImageMatchesDiffusers(_ run: SDXLFixture.Run) throws {
    let fixture = try SDXLFixture.shared.get()
    let pipeline = try Pipeline(weights: try SDXLFixture.model("tiny-sdxl"))
    let (conditional, unconditional) = fixture.conditioning(pipeline)
    let latents = try pipeline.sample(
        conditional: conditional, unconditional: unconditional, settings: try fixture.settings(run),
        image: Pipeline.pixels(rgb: fixture.initImage, width: fixture.width, height: fixture.height), strength: try #require(run.strength))
    expectMatches(pipeline, latents, run)
}

@Test(arguments: try SDXLFixture.runs(\.inpaint))
func sdxlInpaintingMatchesDiffusers(_ run: SDXLFixture.Run) throws {
    let fixture = try SDXLFixture.shared.get()
    var weights = try SDXLFixture.model("tiny-sdxl")
    if run.unet == "inpaint" {
        let folder = modelFixtures.appendingPathComponent("tiny-sdxl-inpaint-unet")
        weights.unetConfig = try JSONDecoder().decode(UNetConfig.self, from: Data(contentsOf: folder.appendingPathComponent("config.json")))
        weights.unet = try SafeTensorsFile(url: folder.appendingPathComponent("diffusion_pytorch_model.safetensors")).allTensors()
    }
    let pipeline = try Pipeline(weights: weights)
    #expect(pipeline.unet.config.inChannels == (run.unet == "inpaint" ? 9 : 4))
    let (conditional, unconditional) = fixture.conditioning(pipeline)
    let latents = try pipeline.sample(
        conditional: conditional, unconditional: unconditional, settings: try fixture.settings(run),
        image: Pipeline.pixels(rgb: fixture.initImage, width: fixture.width, height: fixture.height),
        strength: try #require(run.strength),
        mask: Tensor(shape: [1, 1, fixture.height, fixture.width], values: fixture.mask.map { Float($0) / 255 }))
    expectMatches(pipeline, latents, run)
}

@Test(arguments: try SDXLFixture.runs(\.controlnet))
func sdxlControlNetMatchesDiffusers(_ run: SDXLFixture.Run) throws {
    let fixture = try SDXLFixture.shared.get()
    let pipeline = try Pipeline(weights: try SDXLFixture.model("tiny-sdxl"))
    let net = try ControlNet.load(modelFixtures.appendingPathComponent("tiny-sdxl-controlnet"))
    let image = Pipeline.pixels(rgb: fixture.control, width: fixture.width, height: fixture.height).map { $0 / 2 + 0.5 }
    let (conditional, unconditional) = fixture.conditioning(pipeline)
    let latents = try pipeline.sample(
        conditional: conditional, unconditional: unconditional, settings: try fixture.settings(run),
        controls: [Pipeline.Control(net: net, image: image, scale: try #require(run.scale))])
    expectMatches(pipeline, latents, run)
}

@Test(arguments: try SDXLFixture.runs(\.refiner))
func sdxlRefinerHandOffMatchesDiffusers(_ run: SDXLFixture.Run) throws {
    let fixture = try SDXLFixture.shared.get()
    let base = try Pipeline(weights: try SDXLFixture.model("tiny-sdxl"))
    let refiner = try Pipeline(weights: try SDXLFixture.model("tiny-sdxl-refiner"))
    let settings = try fixture.settings(run)
    let switchAt = try #require(run.switchAt)
    let (conditional, unconditional) = fixture.conditioning(base)
    let handed = try base.sample(conditional: conditional, unconditional: unconditional, settings: settings, handOff: .stopAt(switchAt))
    #expect(difference(handed, try #require(run.handed)) < 1e-3, "the base's latents at the hand-off differ")
    let (refinerConditional, refinerUnconditional) = fixture.conditioning(refiner)
    var calls: [(Int, Int)] = []
    let latents = try base.sample(
        conditional: conditional, unconditional: unconditional, refiner: refiner, refinerConditional: refinerConditional,
        refinerUnconditional: refinerUnconditional, switchAt: switchAt, settings: settings,
        progress: { step, total in
            calls.append((step, total))
            return true
        })
    expectMatches(refiner, latents, run)
    #expect(calls.map(\.0) == Array(1...calls.count), "progress counts the base's and the refiner's steps in one run")
    #expect(calls.allSatisfy { $0.1 == calls.count })
}

@Test func vaeOverrideDecodesWithTheOtherVAEInBothForms() throws {
    let fixture = try SDXLFixture.shared.get()
    let run = try #require(fixture.txt2img.first)
    let latents = Tensor(shape: run.latentsShape, values: run.latents)
    let own = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sdxl"))
    let folder = try ModelWeights.load(
        modelFixtures.appendingPathComponent("tiny-sdxl"), options: .init(vae: modelFixtures.appendingPathComponent("tiny-sdxl-vae")))
    let file = try ModelWeights.load(
        modelFixtures.appendingPathComponent("tiny-sdxl"),
        options: .init(vae: modelFixtures.appendingPathComponent("tiny-sdxl-vae.safetensors")))
    expectIdentical(folder.vae, file.vae, "the VAE as an LDM single file")
    #expect(file.vaeConfig == folder.vaeConfig && folder.vaeConfig.scalingFactor == 0.13025)
    #expect(folder.vae["decoder.conv_out.weight"]?.scalars != own.vae["decoder.conv_out.weight"]?.scalars)
    expectIdentical(folder.unet, own.unet, "the UNet, untouched by the override")
    for weights in [folder, file] {
        let decoded = try Pipeline(weights: weights).decode(latents).flatMap { $0 }
        #expect(decoded.count == fixture.alternativeVAEPixels.count)
        let error = zip(decoded, fixture.alternativeVAEPixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
        #expect(error <= 2, "pixels decoded by the override differ from diffusers' by \(error)/255")
    }
    // A VAE of another scale (SD's tiny 2-level one) is refused with the reason.
    #expect(throws: WeightsError.self) {
        try ModelWeights.load(
            modelFixtures.appendingPathComponent("tiny-sdxl"), options: .init(vae: modelFixtures.appendingPathComponent("tiny-sd1")))
    }
}
