import Foundation
import Tensors

/// diffusers' KDPM2DiscreteScheduler (k-diffusion's DPM-Solver-2): an Euler step to the
/// geometric midpoint σ, a second UNet call there, then the full step with the midpoint's
/// slope (2·steps − 1 calls; the last step is a plain Euler step to σ = 0).
public struct DPM2Scheduler: SigmaScheduler {
    public let timesteps: [Float]
    /// diffusers' `sigmas` layout: σ₀, then σ₁…σₙ₋₁ twice each, then three zeros.
    let sigmas: [Float]
    /// diffusers' `sigmas_interpol` layout: √(σᵢ·σᵢ₋₁) in the same interleaving.
    let interpolated: [Float]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
    /// The sample the first-order half started from; non-nil between the two halves of a step.
    var saved: Tensor?

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let t = schedule.spacedTimesteps(steps, roundLinspace: false)
        let s = t.map { Float(schedule.sigma(at: $0)) } + [0]
        // torch's lerp at weight ½ computes end − (end − start)·½ in float32; at i = 0 the
        // neighbour is σ = 0, which diffusers never reads (it becomes NaN there).
        let midpoints: [Float] = s.indices.map { i in
            guard i > 0 else { return .nan }
            let start = Foundation.log(s[i])
            let end = Foundation.log(s[i - 1])
            return Foundation.exp(end - (end - start) * 0.5)
        }
        sigmas = [s[0]] + s.dropFirst().flatMap { [$0, $0] } + [s.last!]
        interpolated = [midpoints[0]] + midpoints.dropFirst().flatMap { [$0, $0] } + [midpoints.last!]
        let logSigmas = schedule.sigmas.map { Foundation.log($0) }
        // diffusers takes the log of the float32 midpoint in float32 before interpolating in double.
        let midTimesteps = midpoints.dropFirst().dropLast().map {
            Float(DPMSolverMultistepScheduler.timestep(forLogSigma: Double(Foundation.log($0)), logSigmas: logSigmas))
        }
        timesteps = [Float(t[0])] + zip(midTimesteps, t.dropFirst()).flatMap { [$0, Float($1)] }
    }

    public var order: Int { 2 }

    /// The σ the UNet sees at call `index`: the step's σ, or the midpoint for the second half.
    func inputSigma(_ index: Int, firstOrder: Bool) -> Float {
        firstOrder ? sigmas[index] : interpolated[index]
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        let sigma = inputSigma(index, firstOrder: saved == nil)
        return sample.scaled(by: 1 / (sigma * sigma + 1).squareRoot())
    }

    public func sigma(at index: Int) -> Float { sigmas[index] }

    public var maximumSigma: Float { sigmas.max() ?? 1 }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        if let start = saved {
            let sigma = sigmas[index - 1]
            let midpoint = interpolated[index]
            let next = sigmas[index]
            let x0 = schedule.denoised(modelOutput, sample: sample, sigma: midpoint)
            let dt = next - sigma
            saved = nil
            let derivative = Tensor.broadcast(sample, x0) { ($0 - $1) / midpoint }
            return Tensor.broadcast(start, derivative) { $0 + $1 * dt }
        }
        let sigma = sigmas[index]
        let midpoint = interpolated[index + 1]
        let x0 = schedule.denoised(modelOutput, sample: sample, sigma: sigma)
        let dt = midpoint - sigma
        saved = sample
        let derivative = Tensor.broadcast(sample, x0) { ($0 - $1) / sigma }
        return Tensor.broadcast(sample, derivative) { $0 + $1 * dt }
    }
}
