import Foundation

/// How inference timesteps are picked from the training schedule (diffusers' `timestep_spacing`).
public enum TimestepSpacing: String, Sendable, CaseIterable {
    case leading, trailing, linspace
}

/// The forward-diffusion noise schedule of Stable Diffusion: betas, cumulative
/// alphas and the inference timesteps a sampler visits.
public struct NoiseSchedule: Sendable {
    /// Per-training-step noise variances β_t.
    public let betas: [Double]
    /// ᾱ_t = ∏ (1 − β_s) for s ≤ t.
    public let alphasCumprod: [Double]

    /// SD's "scaled_linear" schedule: β linear in √β between `betaStart` and `betaEnd`.
    public static func scaledLinear(
        trainSteps: Int = 1000, betaStart: Double = 0.00085,
        betaEnd: Double = 0.012
    ) -> NoiseSchedule {
        let lo = betaStart.squareRoot()
        let hi = betaEnd.squareRoot()
        let betas = (0..<trainSteps).map { index -> Double in
            let t = trainSteps == 1 ? 0 : Double(index) / Double(trainSteps - 1)
            let root = lo + (hi - lo) * t
            return root * root
        }
        return NoiseSchedule(betas: betas)
    }

    /// A schedule from explicit betas.
    public init(betas: [Double]) {
        self.betas = betas
        var product = 1.0
        alphasCumprod = betas.map { beta in
            product *= 1 - beta
            return product
        }
    }

    /// Number of training timesteps.
    public var trainSteps: Int { betas.count }

    /// The noise level σ_t = √((1 − ᾱ_t) / ᾱ_t) used by k-diffusion samplers.
    public func sigma(at timestep: Int) -> Double {
        let alpha = alphasCumprod[timestep]
        return ((1 - alpha) / alpha).squareRoot()
    }

    /// Inference timesteps, high to low, as diffusers' schedulers pick them.
    public func timesteps(count: Int, spacing: TimestepSpacing, stepsOffset: Int = 1) -> [Int] {
        precondition(count >= 1 && count <= trainSteps, "step count must be 1...\(trainSteps), got \(count)")
        switch spacing {
        case .leading:
            let ratio = trainSteps / count
            return (0..<count).map { $0 * ratio + stepsOffset }.reversed()
        case .trailing:
            let ratio = Double(trainSteps) / Double(count)
            return stride(from: Double(trainSteps), to: 0, by: -ratio).map { Int($0.rounded(.toNearestOrEven)) - 1 }
        case .linspace:
            return (0..<count).map { index in
                let t = count == 1 ? 0 : Double(index) * Double(trainSteps - 1) / Double(count - 1)
                return Int(t.rounded(.toNearestOrEven))
            }.reversed()
        }
    }
}
