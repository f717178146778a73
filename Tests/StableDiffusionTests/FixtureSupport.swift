import Foundation
import StableDiffusion
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

/// A diffusers pipeline run's settings as the pipeline fixtures write them.
struct FixtureSettings: Decodable, Sendable {
    let width, height, steps: Int
    let guidance: Float
    let seed: UInt64
    let batch: Int
}

/// The pipeline settings of a fixture run: its size, steps, guidance, seed and batch, and the sampler it names.
func pipelineSettings(
    width: Int, height: Int, steps: Int, guidance: Float, seed: UInt64, batch: Int = 1, sampler: String
) throws -> Pipeline.Settings {
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

extension FixtureSettings {
    /// These settings for the pipeline, with the sampler `sampler` names.
    func pipeline(sampler: String) throws -> Pipeline.Settings {
        try pipelineSettings(width: width, height: height, steps: steps, guidance: guidance, seed: seed, batch: batch, sampler: sampler)
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
}
