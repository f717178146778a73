import Foundation
import StableDiffusion
import Tensors
import Testing

/// Hires fix, latent interpolation and resize mode 3 as diffusers and torch compute them (Tools/make_hires_fixtures.py).
struct HiresFixtures: Decodable, Sendable {
    struct Interpolation: Decodable, Sendable {
        let mode: String
        let size: [Int]
        let output: [Float]
    }
    struct Interpolations: Decodable, Sendable {
        let source: [Float]
        let cases: [Interpolation]
    }
    struct HiresCase: Decodable, Sendable, CustomTestStringConvertible {
        let sampler, upscaler: String
        let seed: UInt64
        let batch, width, height, steps: Int
        let guidance: Float
        let hiresWidth, hiresHeight, upscaledWidth, upscaledHeight, hiresSteps: Int
        let denoise: Double
        let ids, negativeIds: [Int]
        let first: [Float]
        let latentsShape: [Int]
        let latents: [Float]
        var testDescription: String { "\(sampler) \(upscaler) → \(hiresWidth)x\(hiresHeight) ×\(batch)" }
    }
    struct LatentResize: Decodable, Sendable {
        let seed: UInt64
        let width, height, steps, initWidth, initHeight: Int
        let guidance: Float
        let strength: Double
        let initPixels: [UInt8]
        let ids, negativeIds: [Int]
        let latentsShape: [Int]
        let latents: [Float]
    }
    let interpolate: Interpolations
    let hires: [HiresCase]
    let latentResize: LatentResize

    /// Fixtures/hires.json, its snake_case keys read as camelCase.
    static func load() throws -> HiresFixtures {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(HiresFixtures.self, from: try fixtureData("hires.json")) } catch let error as FixtureError {
            throw error
        } catch {
            throw FixtureError(file: "hires.json", reason: "does not decode: \(error)")
        }
    }
}

/// The largest absolute difference of two arrays (infinity when their lengths differ).
private func largestDifference(_ lhs: [Float], _ rhs: [Float]) -> Float {
    lhs.count == rhs.count ? zip(lhs, rhs).map { abs($0 - $1) }.max() ?? 0 : .infinity
}

@Test func latentInterpolationMatchesTorch() throws {
    let fixtures = try HiresFixtures.load().interpolate
    #expect(fixtures.cases.count == 24)
    let source = Tensor(shape: [1, 4, 5, 7], values: fixtures.source)
    for fixture in fixtures.cases {
        let mode = try #require(LatentUpscaleMode(rawValue: fixture.mode))
        let output = mode.interpolate(source, height: fixture.size[0], width: fixture.size[1])
        #expect(output.shape == [1, 4] + fixture.size)
        let error = largestDifference(output.scalars, fixture.output)
        #expect(error < 1e-5, "\(fixture.mode) to \(fixture.size) differs by \(error)")
    }
}

@Test(arguments: try HiresFixtures.load().hires)
func hiresFixMatchesDiffusers(_ fixture: HiresFixtures.HiresCase) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model("tiny-sd1"))
    var settings = Pipeline.Settings()
    (settings.width, settings.height, settings.steps, settings.guidance) = (fixture.width, fixture.height, fixture.steps, fixture.guidance)
    (settings.seed, settings.batch, settings.sampler) = (fixture.seed, fixture.batch, try SamplerName(parsing: fixture.sampler))
    // The request's geometry (the web UI's calculate_target_resolution) gives the sizes diffusers was run at.
    var request = GenerationRequest.Hires(scale: 2)
    if fixture.hiresWidth != 2 * fixture.width { request = GenerationRequest.Hires(width: fixture.hiresWidth, height: fixture.hiresHeight) }
    let target = request.target(width: fixture.width, height: fixture.height)
    #expect(target.upscaled == PixelSize(width: fixture.upscaledWidth, height: fixture.upscaledHeight))
    #expect(target.final == PixelSize(width: fixture.hiresWidth, height: fixture.hiresHeight))
    let conditional = TextConditioning(context: pipeline.textEncoder([fixture.ids]))
    let unconditional = TextConditioning(context: pipeline.textEncoder([fixture.negativeIds]))
    let first = try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings)
    #expect(largestDifference(first.scalars, fixture.first) < 1e-3)
    let pass = HiresPass(
        upscaled: target.upscaled, size: target.final, upscaler: try #require(LatentUpscaleMode(rawValue: fixture.upscaler)),
        steps: fixture.hiresSteps, strength: fixture.denoise, sampler: settings.sampler, conditional: conditional, unconditional: unconditional)
    var reported: [(Int, Int)] = []
    let latents = try pipeline.sampleHires(
        conditional: conditional, unconditional: unconditional, settings: settings, hires: pass,
        progress: { step, total in
            reported.append((step, total))
            return true
        })
    #expect(latents.shape == fixture.latentsShape)
    let error = largestDifference(latents.scalars, fixture.latents)
    #expect(error < 1e-3, "final latents differ by \(error)")
    // Both passes count toward one total: the first pass's steps, then the part of the second its strength runs.
    let secondSteps = fixture.hiresSteps - Pipeline.firstStep(steps: fixture.hiresSteps, strength: fixture.denoise)
    let order = settings.sampler == .heun || settings.sampler == .dpm2 ? 2 : 1
    #expect(reported.last.map { $0.0 == $0.1 } == true)
    #expect(reported.last?.1 == fixture.steps * order + secondSteps * order)
}

@Test func latentResizeModeMatchesDiffusers() throws {
    let fixture = try HiresFixtures.load().latentResize
    let pipeline = try Pipeline(weights: try NetworkFixtures.model("tiny-sd1"))
    var settings = Pipeline.Settings()
    (settings.width, settings.height, settings.steps, settings.guidance) = (fixture.width, fixture.height, fixture.steps, fixture.guidance)
    (settings.seed, settings.sampler) = (fixture.seed, .euler)
    let image = Pipeline.pixels(rgb: fixture.initPixels, width: fixture.initWidth, height: fixture.initHeight)
    let (conditional, unconditional) = (pipeline.textEncoder([fixture.ids]), pipeline.textEncoder([fixture.negativeIds]))
    // Without a resize mode an init image of another size is refused, as before.
    #expect(throws: SamplingError.self) {
        try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings, image: image, strength: fixture.strength)
    }
    let latents = try pipeline.sample(
        conditional: TextConditioning(context: conditional), unconditional: TextConditioning(context: unconditional), settings: settings,
        image: image, strength: fixture.strength, initResize: .bilinear)
    #expect(latents.shape == fixture.latentsShape)
    let error = largestDifference(latents.scalars, fixture.latents)
    #expect(error < 1e-3, "final latents differ by \(error)")
}
