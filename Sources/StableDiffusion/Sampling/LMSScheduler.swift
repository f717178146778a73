import Foundation
import Tensors

/// diffusers' LMSDiscreteScheduler: linear multistep (order 4) on σ, its coefficients
/// integrated exactly (Gauss–Legendre; the integrands are polynomials of degree ≤ 3).
public struct LMSScheduler: SigmaScheduler {
    public let timesteps: [Float]
    let sigmas: [Double]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
    var derivatives: [Tensor] = []

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let t = schedule.spacedTimesteps(steps, roundLinspace: false)
        timesteps = t.map(Float.init)
        sigmas = t.map { Double(Float(schedule.sigma(at: $0))) } + [0]
    }

    /// ∫ from σ_t to σ_{t+1} of the Lagrange basis polynomial `current` over the last `order` σs.
    func coefficient(order: Int, index: Int, current: Int) -> Double {
        func basis(_ tau: Double) -> Double {
            var product = 1.0
            for k in 0..<order where k != current {
                product *= (tau - sigmas[index - k]) / (sigmas[index - current] - sigmas[index - k])
            }
            return product
        }
        let nodes: [(Double, Double)] = [
            (0, 0.568_888_888_888_888_9), (-0.538_469_310_105_683_1, 0.478_628_670_499_366_5),
            (0.538_469_310_105_683_1, 0.478_628_670_499_366_5), (-0.906_179_845_938_664, 0.236_926_885_056_189_1),
            (0.906_179_845_938_664, 0.236_926_885_056_189_1),
        ]
        let a = sigmas[index]
        let b = sigmas[index + 1]
        return nodes.reduce(0) { $0 + $1.1 * basis((b - a) / 2 * $1.0 + (a + b) / 2) } * (b - a) / 2
    }

    public func sigma(at index: Int) -> Float { Float(sigmas[index]) }

    public var maximumSigma: Float { Float(sigmas.max() ?? 1) }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        let sigma = Float(sigmas[index])
        let x0 = schedule.denoised(modelOutput, sample: sample, sigma: sigma)
        derivatives.append(Tensor.broadcast(sample, x0) { ($0 - $1) / sigma })
        if derivatives.count > 4 { derivatives.removeFirst() }
        let order = min(index + 1, 4)
        var result = sample
        for (current, derivative) in derivatives.reversed().enumerated() where current < order {
            result.add(derivative, scaledBy: Float(coefficient(order: order, index: index, current: current)))
        }
        return result
    }
}
