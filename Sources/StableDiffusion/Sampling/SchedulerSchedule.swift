import Foundation
import Tensors

/// The training noise schedule and spacing settings every scheduler starts from.
public struct SchedulerSchedule: Sendable {
    /// ᾱ_t for t = 0…T−1.
    public let alphasCumprod: [Double]
    /// How inference timesteps are spaced.
    public let spacing: TimestepSpacing
    /// Added to leading-spaced timesteps.
    public let stepsOffset: Int
    /// What the UNet predicts.
    public let prediction: PredictionType
    /// The config's `clip_sample` (nil: the sampler class's default).
    public let clipSample: Bool?
    /// The bound `clip_sample` clamps to.
    public let clipSampleRange: Float
    /// The config's `set_alpha_to_one` (nil: the sampler class's default).
    public let setAlphaToOne: Bool?

    /// Reads the config, taking `defaultSpacing` where it sets no spacing; only SD's
    /// scaled-linear and linear betas are supported.
    public init(config: SchedulerConfig, defaultSpacing: TimestepSpacing = .leading) throws {
        let schedule: NoiseSchedule
        switch config.betaSchedule {
        case "scaled_linear":
            schedule = .scaledLinear(trainSteps: config.numTrainTimesteps, betaStart: config.betaStart, betaEnd: config.betaEnd)
        case "linear":
            let n = config.numTrainTimesteps
            schedule = NoiseSchedule(
                betas: (0..<n).map { config.betaStart + (config.betaEnd - config.betaStart) * Double($0) / Double(max(n - 1, 1)) })
        default:
            throw SamplingError("beta schedule \(config.betaSchedule) is not supported (scaled_linear, linear)")
        }
        alphasCumprod = schedule.alphasCumprod
        guard let spacing = config.timestepSpacing.map(TimestepSpacing.init(rawValue:)) ?? defaultSpacing else {
            throw SamplingError("timestep spacing \(config.timestepSpacing ?? "") is not supported (leading, trailing, linspace)")
        }
        self.spacing = spacing
        stepsOffset = config.stepsOffset
        guard let prediction = PredictionType(rawValue: config.predictionType) else {
            throw SamplingError("prediction type \(config.predictionType) is not supported (epsilon, v_prediction)")
        }
        self.prediction = prediction
        clipSample = config.clipSample
        clipSampleRange = Float(config.clipSampleRange)
        setAlphaToOne = config.setAlphaToOne
    }

    /// x₀ clamped to ±`clipSampleRange` when clipping is on (`defaultClip`: the sampler class's default).
    func clipped(_ x0: Tensor, defaultClip: Bool) -> Tensor {
        guard clipSample ?? defaultClip else { return x0 }
        let bound = clipSampleRange
        return x0.map { Swift.min(Swift.max($0, -bound), bound) }
    }

    /// Training steps.
    public var trainSteps: Int { alphasCumprod.count }

    /// σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep.
    public var sigmas: [Double] { alphasCumprod.map { ((1 - $0) / $0).squareRoot() } }

    /// σ at a fractional timestep, interpolated linearly (numpy.interp).
    func sigma(at t: Double) -> Double {
        let all = sigmas
        let low = Int(t.rounded(.down))
        let high = min(low + 1, all.count - 1)
        let w = t - Double(low)
        return all[max(0, min(low, all.count - 1))] * (1 - w) + all[high] * w
    }

    /// Inference timesteps (high to low) as diffusers spaces them; `plusOne` asks for n+1 and drops
    /// the last (DPM-Solver); `roundLinspace: false` keeps linspace's fractional timesteps, as the
    /// σ-based schedulers (Euler, Heun, LMS, KDPM2, DPM++ SDE) do.
    func spacedTimesteps(_ n: Int, plusOne: Bool = false, roundLinspace: Bool = true) -> [Double] {
        let count = plusOne ? n + 1 : n
        switch spacing {
        case .leading:
            let ratio = trainSteps / count
            var steps = (0..<count).map { Double($0 * ratio + stepsOffset) }.reversed().map { $0 }
            if plusOne { steps.removeLast() }
            return steps
        case .trailing:
            let ratio = Double(trainSteps) / Double(n)
            return Swift.stride(from: Double(trainSteps), to: 0, by: -ratio).map { $0.rounded(.toNearestOrEven) - 1 }
        case .linspace:
            var steps = (0..<count).map { i -> Double in
                let t = count == 1 ? 0 : Double(i) * Double(trainSteps - 1) / Double(count - 1)
                return roundLinspace ? t.rounded(.toNearestOrEven) : t
            }.reversed().map { $0 }
            if plusOne { steps.removeLast() }
            return steps
        }
    }

    /// The model's prediction of the clean latents x₀ from a σ-parameterised sample (k-diffusion form).
    func denoised(_ modelOutput: Tensor, sample: Tensor, sigma: Float) -> Tensor {
        switch prediction {
        case .epsilon:
            return Tensor.broadcast(sample, modelOutput) { $0 - sigma * $1 }
        case .vPrediction:
            let a = -sigma / (sigma * sigma + 1).squareRoot()
            let b = 1 / (sigma * sigma + 1)
            return Tensor.broadcast(modelOutput, sample) { $0 * a + $1 * b }
        }
    }
}
