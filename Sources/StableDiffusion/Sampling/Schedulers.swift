import Foundation
import Tensors

/// A sampler as diffusers' schedulers run it: a list of UNet calls (timesteps), how to
/// scale the input of each, and how to turn each prediction into the next latents.
public protocol Scheduler {
    /// The timestep passed to the UNet at each call, in order.
    var timesteps: [Float] { get }
    /// The initial noise is multiplied by this.
    var initNoiseSigma: Float { get }
    /// Scales the latents before the UNet call at `index`.
    func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor
    /// The latents after UNet call `index`; `noise` draws fresh standard-normal noise
    /// shaped like the latents (only ancestral/stochastic samplers call it).
    mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor
    /// UNet calls per sampler step (2 for Heun).
    var order: Int { get }
    /// The forward process: clean latents noised to the level of UNet call `index` (img2img, inpainting).
    func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor
}

extension Scheduler {
    public var order: Int { 1 }
}

/// Forward noising for schedulers that work on σ (k-diffusion form): x + σ·ε.
func addNoiseSigma(_ original: Tensor, noise: Tensor, sigma: Float) -> Tensor {
    Tensor.broadcast(original, noise) { $0 + sigma * $1 }
}

/// Forward noising for schedulers that work on ᾱ (DDPM form): √ᾱ·x + √(1−ᾱ)·ε.
func addNoiseAlpha(_ original: Tensor, noise: Tensor, alphaCumprod: Double) -> Tensor {
    let a = Float(alphaCumprod.squareRoot())
    let b = Float((1 - alphaCumprod).squareRoot())
    return Tensor.broadcast(original, noise) { a * $0 + b * $1 }
}

/// What the UNet predicts.
public enum PredictionType: String, Sendable {
    case epsilon
    case vPrediction = "v_prediction"
}

extension SamplerName {
    /// The timestep spacing of diffusers' scheduler class for this sampler, used when the model's
    /// config does not set one.
    public var defaultSpacing: TimestepSpacing {
        switch self {
        case .ddim, .ddpm, .pndm, .lcm: return .leading
        case .lms, .euler, .eulerAncestral, .heun, .dpmpp2m, .dpmpp2mKarras, .dpm2, .unipc, .dpmppSDEKarras: return .linspace
        }
    }

    /// A scheduler of this kind for `steps` steps.
    public func make(config: SchedulerConfig, steps: Int, eta: Float = 0) throws -> any Scheduler {
        guard steps >= 1 && steps <= config.numTrainTimesteps else {
            throw SamplingError("steps must be 1...\(config.numTrainTimesteps), got \(steps)")
        }
        let schedule = try SchedulerSchedule(config: config, defaultSpacing: defaultSpacing)
        switch self {
        case .ddim: return DDIMScheduler(schedule: schedule, steps: steps, eta: eta)
        case .ddpm: return DDPMScheduler(schedule: schedule, steps: steps)
        case .pndm: return PNDMScheduler(schedule: schedule, steps: steps)
        case .lms: return LMSScheduler(schedule: schedule, steps: steps)
        case .heun: return HeunScheduler(schedule: schedule, steps: steps)
        case .euler: return EulerScheduler(schedule: schedule, steps: steps, ancestral: false)
        case .eulerAncestral: return EulerScheduler(schedule: schedule, steps: steps, ancestral: true)
        case .dpmpp2m: return DPMSolverMultistepScheduler(schedule: schedule, steps: steps, karras: false)
        case .dpmpp2mKarras: return DPMSolverMultistepScheduler(schedule: schedule, steps: steps, karras: true)
        case .dpm2: return DPM2Scheduler(schedule: schedule, steps: steps)
        case .unipc: return UniPCScheduler(schedule: schedule, steps: steps)
        case .lcm: return try LCMScheduler(schedule: schedule, steps: steps)
        case .dpmppSDEKarras: return DPMSolverSDEScheduler(schedule: schedule, steps: steps)
        }
    }
}

/// A bad sampling request (unknown sampler, bad step count, bad size…).
public struct SamplingError: Error, CustomStringConvertible, Equatable {
    /// What was wrong.
    public var message: String
    /// Makes an error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

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

/// diffusers' EulerDiscreteScheduler and EulerAncestralDiscreteScheduler.
public struct EulerScheduler: Scheduler {
    public let timesteps: [Float]
    let sigmas: [Float]
    let ancestral: Bool
    let schedule: SchedulerSchedule

    init(schedule: SchedulerSchedule, steps: Int, ancestral: Bool) {
        self.schedule = schedule
        self.ancestral = ancestral
        let t = schedule.spacedTimesteps(steps, roundLinspace: false)
        timesteps = t.map(Float.init)
        sigmas = t.map { Float(schedule.sigma(at: $0)) } + [0]
    }

    public var initNoiseSigma: Float {
        let maximum = sigmas.max() ?? 1
        return schedule.spacing == .leading ? (maximum * maximum + 1).squareRoot() : maximum
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        sample.scaled(by: 1 / (sigmas[index] * sigmas[index] + 1).squareRoot())
    }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseSigma(original, noise: noise, sigma: sigmas[index])
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let sigma = sigmas[index]
        let next = sigmas[index + 1]
        let x0 = schedule.denoised(modelOutput, sample: sample, sigma: sigma)
        if !ancestral {
            let dt = next - sigma
            return Tensor.broadcast(sample, x0) { s, d in s + (s - d) / sigma * dt }
        }
        let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).squareRoot()
        let down = (next * next - up * up).squareRoot()
        let dt = down - sigma
        let moved = Tensor.broadcast(sample, x0) { s, d in s + (s - d) / sigma * dt }
        return Tensor.broadcast(moved, noise()) { $0 + $1 * up }
    }
}

/// diffusers' DDIMScheduler (η = 0 is deterministic DDIM; η = 1 is DDPM-like).
public struct DDIMScheduler: Scheduler {
    public let timesteps: [Float]
    let schedule: SchedulerSchedule
    let eta: Float
    let stride: Int

    init(schedule: SchedulerSchedule, steps: Int, eta: Float) {
        self.schedule = schedule
        self.eta = eta
        stride = schedule.trainSteps / steps
        timesteps = schedule.spacedTimesteps(steps).map(Float.init)
    }

    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseAlpha(original, noise: noise, alphaCumprod: schedule.alphasCumprod[Int(timesteps[index])])
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let t = Int(timesteps[index])
        let previous = t - stride
        let alpha = Float(schedule.alphasCumprod[t])
        // SD's config has set_alpha_to_one = false: the last step lands on ᾱ₀.
        let alphaPrevious = Float(previous >= 0 ? schedule.alphasCumprod[previous] : schedule.alphasCumprod[0])
        let beta = 1 - alpha
        let betaPrevious = 1 - alphaPrevious
        let (x0, epsilon): (Tensor, Tensor)
        switch schedule.prediction {
        case .epsilon:
            x0 = Tensor.broadcast(sample, modelOutput) { ($0 - beta.squareRoot() * $1) / alpha.squareRoot() }
            epsilon = modelOutput
        case .vPrediction:
            x0 = Tensor.broadcast(sample, modelOutput) { alpha.squareRoot() * $0 - beta.squareRoot() * $1 }
            epsilon = Tensor.broadcast(modelOutput, sample) { alpha.squareRoot() * $0 + beta.squareRoot() * $1 }
        }
        let variance = (betaPrevious / beta) * (1 - alpha / alphaPrevious)
        let std = eta * variance.squareRoot()
        let direction = (1 - alphaPrevious - std * std).squareRoot()
        let previousSample = Tensor.broadcast(x0, epsilon) { alphaPrevious.squareRoot() * $0 + direction * $1 }
        guard eta > 0 else { return previousSample }
        return Tensor.broadcast(previousSample, noise()) { $0 + std * $1 }
    }
}

/// diffusers' DPMSolverMultistepScheduler as DPM-Solver++(2M) (midpoint, zero final
/// sigma), optionally on Karras sigmas.
public struct DPMSolverMultistepScheduler: Scheduler {
    public let timesteps: [Float]
    let sigmas: [Double]
    let schedule: SchedulerSchedule
    var previousX0: Tensor?
    var lowerOrderSteps = 0

    init(schedule: SchedulerSchedule, steps: Int, karras: Bool) {
        self.schedule = schedule
        let all = schedule.sigmas
        if karras {
            let rho = 7.0
            let minimum = pow(all.first!, 1 / rho)
            let maximum = pow(all.last!, 1 / rho)
            let karrasSigmas = (0..<steps).map { i -> Double in
                let ramp = steps == 1 ? 0 : Double(i) / Double(steps - 1)
                return pow(maximum + ramp * (minimum - maximum), rho)
            }
            let logSigmas = all.map { Foundation.log($0) }
            timesteps = karrasSigmas.map { Float(DPMSolverMultistepScheduler.timestep(for: $0, logSigmas: logSigmas).rounded(.toNearestOrEven)) }
            sigmas = karrasSigmas.map { Double(Float($0)) } + [0]
        } else {
            let t = schedule.spacedTimesteps(steps, plusOne: schedule.spacing != .trailing)
            timesteps = t.map(Float.init)
            sigmas = t.map { Double(Float(schedule.sigma(at: $0))) } + [0]
        }
    }

    /// The fractional training timestep whose σ is `sigma` (log-σ interpolation).
    static func timestep(for sigma: Double, logSigmas: [Double]) -> Double {
        timestep(forLogSigma: Foundation.log(sigma), logSigmas: logSigmas)
    }

    /// As `timestep(for:logSigmas:)`, from log σ (callers that round it to float32 first, as diffusers does).
    static func timestep(forLogSigma logSigma: Double, logSigmas: [Double]) -> Double {
        let low = max(0, min(logSigmas.lastIndex(where: { logSigma - $0 >= 0 }) ?? 0, logSigmas.count - 2))
        let w = max(0, min(1, (logSigmas[low] - logSigma) / (logSigmas[low] - logSigmas[low + 1])))
        return (1 - w) * Double(low) + w * Double(low + 1)
    }

    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        let (alpha, sigma) = DPMSolverMultistepScheduler.alphaSigma(sigmas[index])
        let a = Float(alpha)
        let b = Float(sigma)
        return Tensor.broadcast(original, noise) { a * $0 + b * $1 }
    }

    /// (α_t, σ_t) of the variance-preserving form for a k-diffusion σ.
    static func alphaSigma(_ sigma: Double) -> (Double, Double) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let (alphaS, sigmaS) = DPMSolverMultistepScheduler.alphaSigma(sigmas[index])
        let x0: Tensor
        switch schedule.prediction {
        case .epsilon:
            let a = Float(sigmaS)
            let b = Float(alphaS)
            x0 = Tensor.broadcast(sample, modelOutput) { ($0 - a * $1) / b }
        case .vPrediction:
            let a = Float(alphaS)
            let b = Float(sigmaS)
            x0 = Tensor.broadcast(sample, modelOutput) { a * $0 - b * $1 }
        }
        let (alphaT, sigmaT) = DPMSolverMultistepScheduler.alphaSigma(sigmas[index + 1])
        let lambdaT = Foundation.log(alphaT) - Foundation.log(sigmaT)
        let lambdaS = Foundation.log(alphaS) - Foundation.log(sigmaS)
        let h = lambdaT - lambdaS
        let ratio = Float(sigmaT / sigmaS)
        let coefficient = Float(alphaT * (exp(-h) - 1))
        let last = index == timesteps.count - 1
        let result: Tensor
        if lowerOrderSteps < 1 || last || previousX0 == nil {
            result = Tensor.broadcast(sample, x0) { ratio * $0 - coefficient * $1 }
        } else {
            let (alphaP, sigmaP) = DPMSolverMultistepScheduler.alphaSigma(sigmas[index - 1])
            let lambdaP = Foundation.log(alphaP) - Foundation.log(sigmaP)
            let r = Float((lambdaS - lambdaP) / h)
            let d1 = Tensor.broadcast(x0, previousX0!) { ($0 - $1) / r }
            let first = Tensor.broadcast(sample, x0) { ratio * $0 - coefficient * $1 }
            result = Tensor.broadcast(first, d1) { $0 - 0.5 * coefficient * $1 }
        }
        previousX0 = x0
        lowerOrderSteps = min(lowerOrderSteps + 1, 2)
        return result
    }
}
