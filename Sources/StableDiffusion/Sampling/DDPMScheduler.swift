import Foundation
import Tensors

/// diffusers' DDPMScheduler (fixed small variance): the ancestral sampler of the original DDPM paper.
public struct DDPMScheduler: AlphaScheduler {
    public let timesteps: [Float]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
    let stride: Int

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        stride = schedule.trainSteps / steps
        timesteps = schedule.spacedTimesteps(steps).map(Float.init)
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let t = Int(timesteps[index])
        let previous = t - stride
        let alpha = schedule.alphasCumprod[t]
        let alphaPrevious = previous >= 0 ? schedule.alphasCumprod[previous] : 1
        let beta = 1 - alpha
        let betaPrevious = 1 - alphaPrevious
        let currentAlpha = alpha / alphaPrevious
        let currentBeta = 1 - currentAlpha
        var x0: Tensor
        switch schedule.prediction {
        case .epsilon:
            let (a, b) = (Float(beta.squareRoot()), Float(alpha.squareRoot()))
            x0 = Tensor.broadcast(sample, modelOutput) { ($0 - a * $1) / b }
        case .vPrediction:
            let (a, b) = (Float(alpha.squareRoot()), Float(beta.squareRoot()))
            x0 = Tensor.broadcast(sample, modelOutput) { a * $0 - b * $1 }
        }
        x0 = schedule.clipped(x0, defaultClip: true)
        let originalCoefficient = Float(alphaPrevious.squareRoot() * currentBeta / beta)
        let sampleCoefficient = Float(currentAlpha.squareRoot() * betaPrevious / beta)
        let mean = Tensor.broadcast(x0, sample) { originalCoefficient * $0 + sampleCoefficient * $1 }
        guard t > 0 else { return mean }
        let deviation = Float(max(betaPrevious / beta * currentBeta, 1e-20).squareRoot())
        return Tensor.broadcast(mean, noise()) { $0 + deviation * $1 }
    }
}
