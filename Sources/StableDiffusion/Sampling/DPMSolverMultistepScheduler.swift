import Foundation
import Tensors

/// diffusers' DPMSolverMultistepScheduler as DPM-Solver++(2M) (midpoint, zero final
/// sigma), optionally on Karras sigmas.
public struct DPMSolverMultistepScheduler: VariancePreservingScheduler {
    public let timesteps: [Float]
    /// The k-diffusion σ of each UNet call, then 0.
    public let sigmas: [Double]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
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
