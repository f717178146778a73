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

/// Schedulers in k-diffusion's σ form (Euler, Heun, LMS, KDPM2, DPM++ SDE): the UNet sees the latents scaled by
/// 1/√(σ² + 1), the initial noise is scaled by the largest σ, and forward noise is x + σ·ε.
public protocol SigmaScheduler: Scheduler {
    /// The training schedule the σs come from.
    var schedule: SchedulerSchedule { get }
    /// σ at UNet call `index`, in float32.
    func sigma(at index: Int) -> Float
    /// The largest σ of the inference schedule.
    var maximumSigma: Float { get }
}

extension SigmaScheduler {
    public var initNoiseSigma: Float {
        schedule.spacing == .leading ? (maximumSigma * maximumSigma + 1).squareRoot() : maximumSigma
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        let sigma = sigma(at: index)
        return sample.scaled(by: 1 / (sigma * sigma + 1).squareRoot())
    }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseSigma(original, noise: noise, sigma: sigma(at: index))
    }
}

/// Schedulers in DDPM's ᾱ form (DDIM, DDPM, PLMS, LCM): the UNet sees the latents as they are, the initial noise
/// is unscaled, and forward noise is √ᾱ·x + √(1−ᾱ)·ε at the call's training timestep.
public protocol AlphaScheduler: Scheduler {
    /// The training schedule whose ᾱ the timesteps index.
    var schedule: SchedulerSchedule { get }
}

extension AlphaScheduler {
    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseAlpha(original, noise: noise, alphaCumprod: schedule.alphasCumprod[Int(timesteps[index])])
    }
}

/// Multistep solvers on the variance-preserving form (DPM-Solver++, UniPC): the UNet sees the latents as they are,
/// the initial noise is unscaled, and forward noise is α_σ·x + σ_σ·ε for the call's k-diffusion σ.
public protocol VariancePreservingScheduler: Scheduler {
    /// The k-diffusion σ of each UNet call, then 0.
    var sigmas: [Double] { get }
}

extension VariancePreservingScheduler {
    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        let (alpha, sigma) = DPMSolverMultistepScheduler.alphaSigma(sigmas[index])
        let a = Float(alpha)
        let b = Float(sigma)
        return Tensor.broadcast(original, noise) { a * $0 + b * $1 }
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
