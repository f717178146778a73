import Foundation
import Tensors

/// diffusers' HeunDiscreteScheduler: Euler steps corrected by a second UNet call at the
/// next σ (2·steps − 1 calls in all).
public struct HeunScheduler: SigmaScheduler {
    public let timesteps: [Float]
    let sigmas: [Float]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
    /// The largest σ.
    public let maximumSigma: Float
    var saved: (derivative: Tensor, dt: Float, sample: Tensor)?

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let t = schedule.spacedTimesteps(steps, roundLinspace: false).map(Float.init)
        let s = t.map { Float(schedule.sigma(at: Double($0))) }
        timesteps = [t[0]] + t.dropFirst().flatMap { [$0, $0] }
        sigmas = [s[0]] + s.dropFirst().flatMap { [$0, $0] } + [0]
        maximumSigma = s.max() ?? 1
    }

    public var order: Int { 2 }

    public func sigma(at index: Int) -> Float { sigmas[index] }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        if let (firstDerivative, dt, start) = saved {
            // Second order: average the slopes at σ and at the next σ, step from the saved sample.
            let next = sigmas[index]
            let x0 = schedule.denoised(modelOutput, sample: sample, sigma: next)
            let derivative = Tensor.broadcast(sample, x0) { ($0 - $1) / next }
            saved = nil
            let mean = Tensor.broadcast(firstDerivative, derivative) { ($0 + $1) / 2 }
            return Tensor.broadcast(start, mean) { $0 + $1 * dt }
        }
        let sigma = sigmas[index]
        let next = sigmas[index + 1]
        let x0 = schedule.denoised(modelOutput, sample: sample, sigma: sigma)
        let derivative = Tensor.broadcast(sample, x0) { ($0 - $1) / sigma }
        let dt = next - sigma
        saved = (derivative, dt, sample)
        return Tensor.broadcast(sample, derivative) { $0 + $1 * dt }
    }
}
