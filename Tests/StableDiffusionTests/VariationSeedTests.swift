import Foundation
import StableDiffusion
import Tensors
import Testing

/// Two images' starting noise for one variation setting (Tools/make_variation_fixtures.py, Fixtures/variation.json),
/// computed from torch generators and the web UI's slerp.
struct VariationCase: Decodable, Sendable, CustomTestStringConvertible {
    let seed: UInt64
    let subseed: UInt64
    let strength: Float
    let shape: [Int]
    /// Seed resize from, in latent cells [H, W].
    let resize: [Int]?
    let noise: [[Float]]
    var testDescription: String { "seed \(seed) subseed \(subseed) × \(strength) \(shape) from \(resize ?? shape)" }
}

@Test(arguments: try fixtureCases("variation.json", as: VariationCase.self))
func variationNoiseMatchesTheWebUI(_ fixture: VariationCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model("tiny-sd1"))
    var settings = Pipeline.Settings()
    (settings.seed, settings.subseed, settings.subseedStrength, settings.batch) = (fixture.seed, fixture.subseed, fixture.strength, 2)
    settings.seedResizeFrom = fixture.resize.map { PixelSize(width: $0[1] * pipeline.latentScale, height: $0[0] * pipeline.latentScale) }
    let noise = pipeline.startingNoise(settings: settings, shape: fixture.shape)
    #expect(noise.shape == [2] + fixture.shape)
    let error = zip(noise.scalars, fixture.noise.flatMap { $0 }).map { abs($0 - $1) }.max() ?? .infinity
    #expect(error < 1e-5, "noise differs by \(error)")
}

/// A tiny-sd1 text-to-image render's 8-bit pixels with these variation settings.
private func render(sampler: SamplerName, subseed: UInt64 = 0, strength: Float = 0, seed: UInt64 = 42) throws -> [UInt8] {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model("tiny-sd1"))
    var settings = Pipeline.Settings()
    (settings.width, settings.height, settings.steps, settings.sampler, settings.seed) = (24, 16, 5, sampler, seed)
    (settings.subseed, settings.subseedStrength) = (subseed, strength)
    let text = pipeline.textEncoder([Array(0..<77)])
    let empty = pipeline.textEncoder([Array(repeating: 1, count: 77)])
    let latents = try pipeline.sample(conditional: text, unconditional: empty, settings: settings)
    return pipeline.decode(latents)[0]
}

@Test func variationStrengthZeroGivesTheBaseSeedsImage() throws {
    for sampler in [SamplerName.euler, .eulerAncestral] {
        let base = try render(sampler: sampler)
        #expect(try render(sampler: sampler, subseed: 99, strength: 0) == base)
        // A real blend changes the picture, so the equality above is not vacuous.
        #expect(try render(sampler: sampler, subseed: 99, strength: 0.5) != base)
    }
}

@Test func variationStrengthOneStartsFromTheSubseedsNoise() throws {
    // slerp at 1 is exactly the variation noise; a sampler without ancestral noise then draws nothing else.
    #expect(try render(sampler: .euler, subseed: 99, strength: 1) == render(sampler: .euler, seed: 99))
}
