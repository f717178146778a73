import Foundation
import Tensors

/// diffusers' EulerDiscreteScheduler and EulerAncestralDiscreteScheduler.
public struct EulerScheduler: SigmaScheduler {
    public let timesteps: [Float]
    let sigmas: [Float]
    let ancestral: Bool
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule

    init(schedule: SchedulerSchedule, steps: Int, ancestral: Bool) {
        self.schedule = schedule
        self.ancestral = ancestral
        let t = schedule.spacedTimesteps(steps, roundLinspace: false)
        timesteps = t.map(Float.init)
        sigmas = t.map { Float(schedule.sigma(at: $0)) } + [0]
    }

    public func sigma(at index: Int) -> Float { sigmas[index] }

    public var maximumSigma: Float { sigmas.max() ?? 1 }

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
