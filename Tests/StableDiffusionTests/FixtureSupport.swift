import Foundation
import StableDiffusion
import Tensors
import Testing

/// Fixtures/ next to this file: what Tools/make_*_fixtures.py write.
let fixtureFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Tiny random-weight models written by Tools/make_model_fixtures.py.
let modelFixtures = fixtureFolder.appendingPathComponent("models")

/// A fixture file that is missing, does not decode, or holds no cases; names the file and what to run.
struct FixtureError: Error, CustomStringConvertible {
    let file: String
    let reason: String
    var description: String { "Fixtures/\(file): \(reason) (written by Tools/make_*_fixtures.py; see CONTRIBUTING.md)" }
}

/// The bytes of Fixtures/`file`; throws a `FixtureError` naming the file when it cannot be read.
func fixtureData(_ file: String) throws -> Data {
    do {
        return try Data(contentsOf: fixtureFolder.appendingPathComponent(file))
    } catch {
        throw FixtureError(file: file, reason: "cannot be read: \(error)")
    }
}

/// Fixtures/`file` decoded as `T`; throws a `FixtureError` naming the file when it is missing or does not decode.
func decodeFixture<T: Decodable>(_ file: String, as type: T.Type = T.self) throws -> T {
    let data = try fixtureData(file)
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch {
        throw FixtureError(file: file, reason: "does not decode as \(T.self): \(error)")
    }
}

/// The `cases` of a JSON fixture (`{"cases": [...]}`). Throws when the file is missing, does not decode or holds
/// no cases, so a parameterised test over it fails instead of passing without checking anything.
func fixtureCases<Case: Decodable>(_ file: String, as type: Case.Type = Case.self) throws -> [Case] {
    let cases = try decodeFixture(file, as: FixtureFile<Case>.self).cases
    guard !cases.isEmpty else { throw FixtureError(file: file, reason: "holds no cases") }
    return cases
}

/// The shape every case fixture shares: `{"cases": [...]}`.
private struct FixtureFile<Case: Decodable>: Decodable {
    let cases: [Case]
}

/// A diffusers pipeline run's settings as the pipeline fixtures write them; `batch` is 1 where a fixture leaves it out.
struct FixtureSettings: Decodable, Sendable {
    let width, height, steps: Int
    let guidance: Float
    let seed: UInt64
    let batch: Int

    private enum CodingKeys: String, CodingKey {
        case width, height, steps, guidance, seed, batch
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        width = try container.decode(Int.self, forKey: .width)
        height = try container.decode(Int.self, forKey: .height)
        steps = try container.decode(Int.self, forKey: .steps)
        guidance = try container.decode(Float.self, forKey: .guidance)
        seed = try container.decode(UInt64.self, forKey: .seed)
        batch = try container.decodeIfPresent(Int.self, forKey: .batch) ?? 1
    }
}

extension FixtureSettings {
    /// These settings for the pipeline: size, steps, guidance, seed and batch, with the sampler `sampler` names.
    func pipeline(sampler: String) throws -> Pipeline.Settings {
        var settings = Pipeline.Settings()
        settings.width = width
        settings.height = height
        settings.steps = steps
        settings.guidance = guidance
        settings.seed = seed
        settings.batch = batch
        settings.sampler = try SamplerName(parsing: sampler)
        return settings
    }
}

/// The part every diffusers-run fixture case shares, decoded from the case's own JSON object: the run's settings
/// (under `settings`, or flat beside the other keys), the prompt's and negative prompt's token ids and the shape of
/// the final latents. A case decodes it with `run = try DiffusersRun(from: decoder)` and adds its own keys.
struct DiffusersRun: Decodable, Sendable {
    let settings: FixtureSettings
    let ids: [Int]
    let negativeIDs: [Int]
    let latentsShape: [Int]

    private enum CodingKeys: String, CodingKey {
        case settings, ids
        case negativeIDs = "negative_ids"
        case latentsShape = "latents_shape"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        settings = try container.decodeIfPresent(FixtureSettings.self, forKey: .settings) ?? FixtureSettings(from: decoder)
        ids = try container.decode([Int].self, forKey: .ids)
        negativeIDs = try container.decode([Int].self, forKey: .negativeIDs)
        latentsShape = try container.decode([Int].self, forKey: .latentsShape)
    }
}

/// What diffusers made in a pipeline run: the final latents and their decoded 8-bit pixels.
struct DiffusersOutput: Decodable, Sendable {
    let latents: [Float]
    let pixels: [UInt8]
}

extension Pipeline {
    /// Samples `run` as diffusers did: its prompt, negative prompt and settings with the sampler `sampler` names,
    /// and any init image, strength, mask and ControlNets, reporting progress as `sample(conditional:…)` does.
    func sample(
        _ run: DiffusersRun, sampler: String, image: Tensor? = nil, strength: Double = 1, mask: Tensor? = nil,
        controls: [Control] = [], progress: (Int, Int) -> Bool = { _, _ in true }
    ) throws -> Tensor {
        try sample(
            conditional: textEncoder([run.ids]), unconditional: textEncoder([run.negativeIDs]),
            settings: run.settings.pipeline(sampler: sampler), image: image, strength: strength, mask: mask,
            controls: controls, progress: progress)
    }
}

@Test func fixtureSetsAreComplete() throws {
    #expect(try fixtureCases("pipelines.json", as: PipelineCase.self).count == 19)
    #expect(try fixtureCases("img2img.json", as: Img2ImgCase.self).count == 10)
    #expect(try fixtureCases("inpaint.json", as: InpaintCase.self).count == 4)
    #expect(try fixtureCases("inpaint2.json", as: InpaintCase.self).count == 40)
    #expect(try fixtureCases("controlnet.json", as: ControlNetCase.self).count == 2)
    #expect(try NetworkFixtures.cases().count == 16)
    #expect(try SDEFixtures.load().zero_noise.count == 2)
    #expect(try demoCases().count == 20)
    #expect(try sd2PromptCases().count == 12)
    #expect(try fixtureCases("variation.json", as: VariationCase.self).count == 7)
    #expect(try HiresFixtures.load().hires.count == 3)
    #expect(try fixtureCases("few_step.json", as: FewStepCase.self).count == 8)
}
