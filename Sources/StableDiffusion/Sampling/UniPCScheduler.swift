import Foundation
import Tensors

/// diffusers' UniPCMultistepScheduler with its defaults: UniPC of order 2 in the "bh2"
/// variant (B(h) = eʰ − 1) on x₀ predictions. Each step first corrects the previous step's
/// result with the new prediction (UniC), then predicts the next sample (UniP); the first
/// and last steps drop to order 1, and the last lands on σ = 0.
public struct UniPCScheduler: VariancePreservingScheduler {
    public let timesteps: [Float]
    /// The k-diffusion σ of each UNet call, then 0.
    public let sigmas: [Double]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
    /// The x₀ predictions of the last two steps, oldest first.
    var outputs: [Tensor] = []
    /// The sample the last predictor started from (the corrector redoes that step).
    var lastSample: Tensor?
    /// The order the last predictor used; the corrector uses the same.
    var lastOrder = 1
    var lowerOrderSteps = 0

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let t = schedule.spacedTimesteps(steps, plusOne: schedule.spacing != .trailing)
        timesteps = t.map(Float.init)
        sigmas = t.map { Double(Float(schedule.sigma(at: $0))) } + [0]
    }

    /// λ = log α − log σ of the variance-preserving form (+∞ at σ = 0).
    func lambda(_ index: Int) -> Double {
        let (alpha, sigma) = DPMSolverMultistepScheduler.alphaSigma(sigmas[index])
        return Foundation.log(alpha) - Foundation.log(sigma)
    }

    /// The coefficients shared by predictor and corrector for a step from σ[`from`] to σ[`to`]:
    /// σ_t/σ_s (VP), α_t, h·φ₁(−h) = e^(−h) − 1, B(h), and the right-hand side b of the order-`order` system.
    func coefficients(from: Int, to: Int, order: Int) -> (ratio: Double, alpha: Double, hPhi1: Double, bh: Double, h: Double, b: [Double]) {
        let (alphaT, sigmaT) = DPMSolverMultistepScheduler.alphaSigma(sigmas[to])
        let (_, sigmaS) = DPMSolverMultistepScheduler.alphaSigma(sigmas[from])
        let h = lambda(to) - lambda(from)
        // predict_x0 integrates in −h.
        let hh = -h
        let hPhi1 = Foundation.expm1(hh)
        let bh = Foundation.expm1(hh)
        var hPhiK = hPhi1 / hh - 1
        var factorial = 1.0
        var b: [Double] = []
        for i in 1...order {
            b.append(hPhiK * factorial / bh)
            factorial *= Double(i + 1)
            hPhiK = hPhiK / hh - 1 / factorial
        }
        return (sigmaT / sigmaS, alphaT, hPhi1, bh, h, b)
    }

    /// x₀ from the UNet output at call `index`.
    func predictedOriginal(_ modelOutput: Tensor, sample: Tensor, index: Int) -> Tensor {
        let (alpha, sigma) = DPMSolverMultistepScheduler.alphaSigma(sigmas[index])
        let a = Float(alpha)
        let s = Float(sigma)
        switch schedule.prediction {
        case .epsilon: return Tensor.broadcast(sample, modelOutput) { ($0 - s * $1) / a }
        case .vPrediction: return Tensor.broadcast(sample, modelOutput) { a * $0 - s * $1 }
        }
    }

    /// UniC: redoes the step from `lastSample` to σ[index] using the new prediction `x0`.
    func corrected(_ x0: Tensor, lastSample: Tensor, order: Int, index: Int) -> Tensor {
        let c = coefficients(from: index - 1, to: index, order: order)
        let m0 = outputs[outputs.count - 1]
        let base = Tensor.broadcast(lastSample, m0) { Float(c.ratio) * $0 - Float(c.alpha * c.hPhi1) * $1 }
        let rhoLast: Double
        var correction: Tensor?
        if order == 1 {
            rhoLast = 0.5
        } else {
            let rk = (lambda(index - 2) - lambda(index - 1)) / c.h
            // R·ρ = b with R = [[1, 1], [r_k, 1]].
            let rho0 = (c.b[0] - c.b[1]) / (1 - rk)
            rhoLast = c.b[0] - rho0
            let d1 = Tensor.broadcast(outputs[outputs.count - 2], m0) { ($0 - $1) / Float(rk) }
            correction = d1.scaled(by: Float(rho0))
        }
        let d1t = Tensor.broadcast(x0, m0) { $0 - $1 }.scaled(by: Float(rhoLast))
        let total = correction.map { $0 + d1t } ?? d1t
        let scale = Float(c.alpha * c.bh)
        return Tensor.broadcast(base, total) { $0 - scale * $1 }
    }

    /// UniP: the step from `sample` at σ[index] to σ[index + 1].
    func predicted(_ sample: Tensor, order: Int, index: Int) -> Tensor {
        let c = coefficients(from: index, to: index + 1, order: order)
        let m0 = outputs[outputs.count - 1]
        let base = Tensor.broadcast(sample, m0) { Float(c.ratio) * $0 - Float(c.alpha * c.hPhi1) * $1 }
        guard order == 2 else { return base }
        let rk = (lambda(index - 1) - lambda(index)) / c.h
        let d1 = Tensor.broadcast(outputs[outputs.count - 2], m0) { ($0 - $1) / Float(rk) }
        // diffusers fixes ρ = ½ for the second-order predictor instead of solving for it.
        let scale = Float(c.alpha * c.bh * 0.5)
        return Tensor.broadcast(base, d1) { $0 - scale * $1 }
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let x0 = predictedOriginal(modelOutput, sample: sample, index: index)
        var current = sample
        if index > 0, let lastSample {
            current = corrected(x0, lastSample: lastSample, order: lastOrder, index: index)
        }
        outputs = Array((outputs + [x0]).suffix(2))
        let order = min(2, timesteps.count - index, lowerOrderSteps + 1)
        lastOrder = order
        lastSample = current
        let result = predicted(current, order: order, index: index)
        lowerOrderSteps = min(lowerOrderSteps + 1, 2)
        return result
    }
}
