import Foundation
import Tensors

/// diffusers' DPMSolverSDEScheduler on Karras σs ("DPM++ SDE Karras"): each step takes an
/// ancestral DPM-Solver++ half step to the geometric midpoint σ, calls the UNet there, then
/// takes the full ancestral step from the step's start with the midpoint's x₀
/// (2·steps − 1 UNet calls; the last step is a plain Euler step to σ = 0, without noise).
///
/// The solver, σs, timesteps and input scaling are diffusers' exactly; the noise is not.
/// diffusers draws the stochastic term from torchsde's `BrownianInterval` (a Brownian tree
/// over σ, queried at [σᵢ, σ_mid] in the first half and [σᵢ, σᵢ₊₁] in the second, each
/// increment divided by √|Δσ|). That tree is seeded from torch's *global* RNG, not from the
/// pipeline's generators, and one tree covers the whole batch, so diffusers' result depends
/// on `torch.manual_seed` and on the batch, and cannot be reproduced from the seed alone.
/// Here the Brownian path is built from standard normals drawn from each image's generator
/// through `noise()` (two draws per step, first half then second, none in the last step):
/// W(σ_mid) − W(σᵢ) = √(σᵢ − σ_mid)·z₁ and W(σᵢ₊₁) − W(σ_mid) = √(σ_mid − σᵢ₊₁)·z₂, so
/// the second half's increment contains the first half's, as on the tree. The joint law of
/// the increments is therefore the same as torchsde's; the values differ, and each image
/// depends only on its own seed.
public struct DPMSolverSDEScheduler: SigmaScheduler {
    public let timesteps: [Float]
    /// diffusers' layout: σ₀, then σ₁…σₙ₋₁ twice each, then 0.
    let sigmas: [Float]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
    /// Between the halves of a step: where it started, the midpoint σ, and the first half's unit noise.
    var saved: (sample: Tensor, midpoint: Double, firstNoise: Tensor)?

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let interpolated = schedule.spacedTimesteps(steps, roundLinspace: false).map { schedule.sigma(at: $0) }
        // diffusers spans the Karras ramp between the spaced timesteps' σs, not the training range.
        let rho = 7.0
        let minimum = pow(interpolated.last!, 1 / rho)
        let maximum = pow(interpolated.first!, 1 / rho)
        let karras = (0..<steps).map { i -> Double in
            // numpy's linspace: i · (1 / (n − 1)), with the end point set exactly.
            let ramp = i == steps - 1 && steps > 1 ? 1 : Double(i) * (steps > 1 ? 1 / Double(steps - 1) : 0)
            return pow(maximum + ramp * (minimum - maximum), rho)
        }
        let logSigmas = schedule.sigmas.map { Foundation.log($0) }
        let t = karras.map { DPMSolverMultistepScheduler.timestep(for: $0, logSigmas: logSigmas) }
        let midpoints = zip(karras, karras.dropFirst()).map { sigma, next -> Double in
            let start = -Foundation.log(sigma)
            let end = -Foundation.log(next)
            return DPMSolverMultistepScheduler.timestep(for: Foundation.exp(-(start + (end - start) * 0.5)), logSigmas: logSigmas)
        }
        timesteps = [Float(t[0])] + zip(midpoints, t.dropFirst()).flatMap { [Float($0), Float($1)] }
        let s = karras.map(Float.init)
        sigmas = [s[0]] + s.dropFirst().flatMap { [$0, $0] } + [0]
    }

    public var order: Int { 2 }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        let sigma = saved.map { Float($0.midpoint) } ?? sigmas[index]
        return sample.scaled(by: 1 / (sigma * sigma + 1).squareRoot())
    }

    public func sigma(at index: Int) -> Float { sigmas[index] }

    public var maximumSigma: Float { sigmas.max() ?? 1 }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let firstHalf = saved == nil
        let sigma = Double(firstHalf ? sigmas[index] : sigmas[index - 1])
        let next = Double(firstHalf ? sigmas[index + 1] : sigmas[index])
        // k-diffusion's time variable t = −log σ.
        let t = -Foundation.log(sigma)
        let tNext = -Foundation.log(next)
        let tMidpoint = t + (tNext - t) * 0.5
        let inputSigma = firstHalf ? sigma : Foundation.exp(-tMidpoint)
        let x0 = schedule.denoised(modelOutput, sample: sample, sigma: Float(inputSigma))
        if next == 0 {
            let s = Float(sigma)
            let dt = Float(next - sigma)
            return Tensor.broadcast(sample, x0) { x, d in x + (x - d) / s * dt }
        }
        let start = saved?.sample ?? sample
        let sigmaFrom = Foundation.exp(-t)
        let sigmaTo = Foundation.exp(-(firstHalf ? tMidpoint : tNext))
        let up = min(sigmaTo, (sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom)).squareRoot())
        let down = (sigmaTo * sigmaTo - up * up).squareRoot()
        let tAncestral = -Foundation.log(down)
        let a = Float(Foundation.exp(-tAncestral) / Foundation.exp(-t))
        let b = Float(Foundation.expm1(t - tAncestral))
        let deterministic = Tensor.broadcast(start, x0) { a * $0 - b * $1 }
        // The Brownian increment over [σ_from, σ_to] divided by √|σ_from − σ_to|, as
        // diffusers' BrownianTreeNoiseSampler returns it.
        let unit: Tensor
        if let saved {
            let z2 = noise()
            let first = Float((sigmaFrom - saved.midpoint).squareRoot())
            let second = Float((saved.midpoint - sigmaTo).squareRoot())
            let whole = Float((sigmaFrom - sigmaTo).squareRoot())
            unit = Tensor.broadcast(saved.firstNoise, z2) { (first * $0 + second * $1) / whole }
            self.saved = nil
        } else {
            unit = noise()
            saved = (start, sigmaTo, unit)
        }
        let scale = Float(up)
        return Tensor.broadcast(deterministic, unit) { $0 + scale * $1 }
    }
}
