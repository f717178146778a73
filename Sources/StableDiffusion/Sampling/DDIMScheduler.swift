import Foundation
import Tensors

/// diffusers' DDIMScheduler (η = 0 is deterministic DDIM; η = 1 is DDPM-like).
public struct DDIMScheduler: AlphaScheduler {
    public let timesteps: [Float]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
    let eta: Float
    let stride: Int

    init(schedule: SchedulerSchedule, steps: Int, eta: Float) {
        self.schedule = schedule
        self.eta = eta
        stride = schedule.trainSteps / steps
        timesteps = schedule.spacedTimesteps(steps).map(Float.init)
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let t = Int(timesteps[index])
        let previous = t - stride
        let alpha = Float(schedule.alphasCumprod[t])
        // SD's config has set_alpha_to_one = false: the last step lands on ᾱ₀ (diffusers' class default is true: ᾱ = 1).
        let final = (schedule.setAlphaToOne ?? true) ? 1 : schedule.alphasCumprod[0]
        let alphaPrevious = Float(previous >= 0 ? schedule.alphasCumprod[previous] : final)
        let beta = 1 - alpha
        let betaPrevious = 1 - alphaPrevious
        var (x0, epsilon): (Tensor, Tensor)
        switch schedule.prediction {
        case .epsilon:
            x0 = Tensor.broadcast(sample, modelOutput) { ($0 - beta.squareRoot() * $1) / alpha.squareRoot() }
            epsilon = modelOutput
        case .vPrediction:
            x0 = Tensor.broadcast(sample, modelOutput) { alpha.squareRoot() * $0 - beta.squareRoot() * $1 }
            epsilon = Tensor.broadcast(modelOutput, sample) { alpha.squareRoot() * $0 + beta.squareRoot() * $1 }
        }
        // Clamping x₀ leaves ε as predicted (diffusers' use_clipped_model_output = false).
        x0 = schedule.clipped(x0, defaultClip: true)
        let variance = (betaPrevious / beta) * (1 - alpha / alphaPrevious)
        let std = eta * variance.squareRoot()
        let direction = (1 - alphaPrevious - std * std).squareRoot()
        let previousSample = Tensor.broadcast(x0, epsilon) { alphaPrevious.squareRoot() * $0 + direction * $1 }
        guard eta > 0 else { return previousSample }
        return Tensor.broadcast(previousSample, noise()) { $0 + std * $1 }
    }
}
