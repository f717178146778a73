import Foundation
import Tensors

/// diffusers' LCMScheduler (latent consistency models) with its defaults: every step maps
/// the sample straight to a consistency-model estimate of x₀, then re-noises it to the next
/// timestep with fresh noise from each image's generator (not after the last step).
///
/// Timesteps come from LCM's own 50-step distillation grid (999, 979, …, 19), `steps` of
/// them evenly picked, so the config's spacing and offset do not apply; at most 50 steps.
/// Any SD model runs with it, but only LCM-distilled ones give good images in few steps.
public struct LCMScheduler: AlphaScheduler {
    public let timesteps: [Float]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule

    /// The distillation grid diffusers calls `original_inference_steps`.
    static let originalSteps = 50
    /// diffusers' `timestep_scaling`: the consistency boundary condition sees 10·t.
    static let timestepScaling = 10.0

    init(schedule: SchedulerSchedule, steps: Int) throws {
        let original = LCMScheduler.originalSteps
        guard schedule.trainSteps >= original else {
            throw SamplingError("lcm needs at least \(original) training timesteps, the model has \(schedule.trainSteps)")
        }
        guard steps <= original else {
            throw SamplingError("lcm takes at most \(original) steps (its distillation grid), got \(steps)")
        }
        self.schedule = schedule
        let k = schedule.trainSteps / original
        let grid = (1...original).map { $0 * k - 1 }.reversed().map { $0 }
        // numpy's linspace(0, 50, steps, endpoint=False) is i · (50 / steps), then floored.
        let spacing = Double(grid.count) / Double(steps)
        timesteps = (0..<steps).map { Float(grid[Int((Double($0) * spacing).rounded(.down))]) }
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let t = Int(timesteps[index])
        let last = index == timesteps.count - 1
        let previous = last ? t : Int(timesteps[index + 1])
        let alpha = schedule.alphasCumprod[t]
        let alphaPrevious = schedule.alphasCumprod[previous]
        let scaled = Double(t) * LCMScheduler.timestepScaling
        let sigmaData = 0.5
        let skip = Float(sigmaData * sigmaData / (scaled * scaled + sigmaData * sigmaData))
        let out = Float(scaled / (scaled * scaled + sigmaData * sigmaData).squareRoot())
        let x0: Tensor
        switch schedule.prediction {
        case .epsilon:
            let (a, b) = (Float((1 - alpha).squareRoot()), Float(alpha.squareRoot()))
            x0 = Tensor.broadcast(sample, modelOutput) { ($0 - a * $1) / b }
        case .vPrediction:
            let (a, b) = (Float(alpha.squareRoot()), Float((1 - alpha).squareRoot()))
            x0 = Tensor.broadcast(sample, modelOutput) { a * $0 - b * $1 }
        }
        let denoised = Tensor.broadcast(x0, sample) { out * $0 + skip * $1 }
        guard !last else { return denoised }
        let (a, b) = (Float(alphaPrevious.squareRoot()), Float((1 - alphaPrevious).squareRoot()))
        return Tensor.broadcast(denoised, noise()) { a * $0 + b * $1 }
    }
}
