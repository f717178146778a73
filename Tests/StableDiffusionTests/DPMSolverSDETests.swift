// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (fixture fields keep the names the Python scripts write)

import Foundation
import StableDiffusion
import Tensors
import Testing

/// DPM++ SDE Karras fixtures (Tools/make_pipeline_fixtures.py): diffusers' noise comes from a
/// torchsde Brownian tree we do not reproduce, so the solver is checked without noise, and
/// the noisy sampler against the statistics of many diffusers runs.
struct SDEFixtures: Decodable {
    /// diffusers with its noise sampler returning zeros.
    struct ZeroNoise: Decodable, Sendable, CustomTestStringConvertible {
        let run: DiffusersRun
        let model: String
        let latents: [Float]
        var testDescription: String { model }

        private enum CodingKeys: String, CodingKey {
            case model, latents
        }

        init(from decoder: any Decoder) throws {
            run = try DiffusersRun(from: decoder)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            model = try container.decode(String.self, forKey: .model)
            latents = try container.decode([Float].self, forKey: .latents)
        }
    }

    /// `runs` real diffusers runs of one batch (same generators, different tree seeds).
    struct Statistics: Decodable, Sendable {
        let run: DiffusersRun
        let model: String
        let runs: Int
        /// Each latent's mean and standard deviation (n − 1) over the runs.
        let mean: [Double]
        let std: [Double]
        /// Each run's mean and standard deviation over all its latents.
        let run_means: [Double]
        let run_stds: [Double]

        private enum CodingKeys: String, CodingKey {
            case model, runs, mean, std, run_means, run_stds
        }

        init(from decoder: any Decoder) throws {
            run = try DiffusersRun(from: decoder)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            model = try container.decode(String.self, forKey: .model)
            runs = try container.decode(Int.self, forKey: .runs)
            mean = try container.decode([Double].self, forKey: .mean)
            std = try container.decode([Double].self, forKey: .std)
            run_means = try container.decode([Double].self, forKey: .run_means)
            run_stds = try container.decode([Double].self, forKey: .run_stds)
        }
    }

    let zero_noise: [ZeroNoise]
    let statistics: [Statistics]

    /// Fixtures/sde.json; throws when it is missing or does not decode.
    static func load() throws -> SDEFixtures { try decodeFixture("sde.json") }
}

/// Mean and sample standard deviation.
private func meanAndDeviation(_ values: [Double]) -> (mean: Double, deviation: Double) {
    let mean = values.reduce(0, +) / Double(values.count)
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
    return (mean, variance.squareRoot())
}

@Test(arguments: try SDEFixtures.load().zero_noise)
func dpmppSDEWithoutNoiseMatchesDiffusersDeterministicPart(_ fixture: SDEFixtures.ZeroNoise) throws {
    let pipeline = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    let settings = fixture.run.settings
    var scheduler = try SamplerName.dpmppSDEKarras.make(config: pipeline.schedulerConfig, steps: settings.steps)
    let shape = [
        settings.batch, pipeline.unet.config.inChannels, settings.height / pipeline.latentScale,
        settings.width / pipeline.latentScale,
    ]
    let perImage = shape.dropFirst().reduce(1, *)
    // The pipeline's loop, with the initial latents from the generators but a solver noise of zero.
    let initial = (0..<settings.batch).flatMap { index -> [Float] in
        var generator = TorchGenerator(seed: settings.seed + UInt64(index))
        return generator.randn(perImage)
    }
    var latents = Tensor(shape: shape, values: initial).scaled(by: scheduler.initNoiseSigma)
    let conditional = pipeline.textEncoder([fixture.run.ids])
    let unconditional = pipeline.textEncoder([fixture.run.negativeIDs])
    let context = Tensor.concat(
        Array(repeating: unconditional, count: settings.batch) + Array(repeating: conditional, count: settings.batch), axis: 0)
    var draws = 0
    for (index, timestep) in scheduler.timesteps.enumerated() {
        let input = scheduler.scaleModelInput(latents, index: index)
        let halves = pipeline.unet(Tensor.concat([input, input], axis: 0), timestep: timestep, context: context).chunked(2, axis: 0)
        let guidance = settings.guidance
        let output = Tensor.broadcast(halves[0], halves[1]) { $0 + guidance * ($1 - $0) }
        latents = scheduler.step(output, index: index, sample: latents) {
            draws += 1
            return Tensor(zeros: shape)
        }
    }
    #expect(scheduler.timesteps.count == 2 * settings.steps - 1)
    // One draw per half step; the last step goes to σ = 0 without noise.
    #expect(draws == 2 * (settings.steps - 1))
    #expect(latents.shape == fixture.run.latentsShape)
    let error = zip(latents.scalars, fixture.latents).map { abs($0 - $1) }.max() ?? .infinity
    #expect(error < 1e-3, "final latents differ by \(error)")
}

@Test func dpmppSDEMatchesDiffusersStatistics() throws {
    let fixture = try #require(SDEFixtures.load().statistics.first)
    let pipeline = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    var calls = 0
    let latents = try pipeline.sample(
        fixture.run, sampler: SamplerName.dpmppSDEKarras.rawValue,
        progress: { step, _ in
            calls = step
            return true
        })
    #expect(calls == 2 * fixture.run.settings.steps - 1)
    #expect(latents.shape == fixture.run.latentsShape)
    let values = latents.scalars.map(Double.init)
    try #require(values.count == fixture.mean.count)

    // Our run shares diffusers' initial latents (the same generators) and differs only in the
    // Brownian noise, so each latent should look like one more draw from the runs' spread.
    // For such a draw z = (x − mean)/std has E[z²] = (1 + 1/n)·(n − 1)/(n − 3) ≈ 1.10 at
    // n = 32 runs; diffusers' own runs, each left out against the other 31, score 1.04–1.19.
    // Measured with diffusers' solver and other noise sources: no noise scores 0.03, the noise
    // scaled by √2 or by 1/√2 scores 2.2–2.3 or 0.57–0.60, and drawing the two half steps'
    // noise independently (ignoring that the second interval contains the first) 0.62–0.67.
    let z2 =
        zip(values, zip(fixture.mean, fixture.std)).reduce(0) { total, item in
            let z = (item.0 - item.1.0) / item.1.1
            return total + z * z
        } / Double(values.count)
    #expect(z2 > 0.85 && z2 < 1.4, "mean squared z-score \(z2)")

    // The run's overall mean and standard deviation within four standard deviations of
    // diffusers' run-to-run spread (a false alarm has odds of about 1 in 15,000 per check).
    // The standard deviation alone rejects independent half-step noise (7.1–7.3 against 7.93 ± 0.07).
    let (mean, _) = meanAndDeviation(values)
    let deviation = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)).squareRoot()
    let means = meanAndDeviation(fixture.run_means)
    let deviations = meanAndDeviation(fixture.run_stds)
    #expect(abs(mean - means.mean) <= 4 * means.deviation, "mean \(mean) vs diffusers' \(means.mean) ± \(means.deviation)")
    #expect(
        abs(deviation - deviations.mean) <= 4 * deviations.deviation,
        "standard deviation \(deviation) vs diffusers' \(deviations.mean) ± \(deviations.deviation)")
}
