import Foundation
import Tensors

/// diffusers' HeunDiscreteScheduler: Euler steps corrected by a second UNet call at the
/// next σ (2·steps − 1 calls in all).
public struct HeunScheduler: Scheduler {
    public let timesteps: [Float]
    let sigmas: [Float]
    let schedule: SchedulerSchedule
    let maximumSigma: Float
    var saved: (derivative: Tensor, dt: Float, sample: Tensor)?

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let t = schedule.spacedTimesteps(steps, roundLinspace: false).map(Float.init)
        let s = t.map { Float(schedule.sigma(at: Double($0))) }
        timesteps = [t[0]] + t.dropFirst().flatMap { [$0, $0] }
        sigmas = [s[0]] + s.dropFirst().flatMap { [$0, $0] } + [0]
        maximumSigma = s.max() ?? 1
    }

    public var initNoiseSigma: Float {
        schedule.spacing == .leading ? (maximumSigma * maximumSigma + 1).squareRoot() : maximumSigma
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        sample.scaled(by: 1 / (sigmas[index] * sigmas[index] + 1).squareRoot())
    }

    public var order: Int { 2 }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseSigma(original, noise: noise, sigma: sigmas[index])
    }

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

/// diffusers' LMSDiscreteScheduler: linear multistep (order 4) on σ, its coefficients
/// integrated exactly (Gauss–Legendre; the integrands are polynomials of degree ≤ 3).
public struct LMSScheduler: Scheduler {
    public let timesteps: [Float]
    let sigmas: [Double]
    let schedule: SchedulerSchedule
    var derivatives: [Tensor] = []

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let t = schedule.spacedTimesteps(steps, roundLinspace: false)
        timesteps = t.map(Float.init)
        sigmas = t.map { Double(Float(schedule.sigma(at: $0))) } + [0]
    }

    public var initNoiseSigma: Float {
        let maximum = Float(sigmas.max() ?? 1)
        return schedule.spacing == .leading ? (maximum * maximum + 1).squareRoot() : maximum
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        let sigma = Float(sigmas[index])
        return sample.scaled(by: 1 / (sigma * sigma + 1).squareRoot())
    }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseSigma(original, noise: noise, sigma: Float(sigmas[index]))
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

/// diffusers' DDPMScheduler (fixed small variance): the ancestral sampler of the original DDPM paper.
public struct DDPMScheduler: Scheduler {
    public let timesteps: [Float]
    let schedule: SchedulerSchedule
    let stride: Int

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        stride = schedule.trainSteps / steps
        timesteps = schedule.spacedTimesteps(steps).map(Float.init)
    }

    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseAlpha(original, noise: noise, alphaCumprod: schedule.alphasCumprod[Int(timesteps[index])])
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
        let x0: Tensor
        switch schedule.prediction {
        case .epsilon:
            let (a, b) = (Float(beta.squareRoot()), Float(alpha.squareRoot()))
            x0 = Tensor.broadcast(sample, modelOutput) { ($0 - a * $1) / b }
        case .vPrediction:
            let (a, b) = (Float(alpha.squareRoot()), Float(beta.squareRoot()))
            x0 = Tensor.broadcast(sample, modelOutput) { a * $0 - b * $1 }
        }
        let originalCoefficient = Float(alphaPrevious.squareRoot() * currentBeta / beta)
        let sampleCoefficient = Float(currentAlpha.squareRoot() * betaPrevious / beta)
        let mean = Tensor.broadcast(x0, sample) { originalCoefficient * $0 + sampleCoefficient * $1 }
        guard t > 0 else { return mean }
        let deviation = Float(max(betaPrevious / beta * currentBeta, 1e-20).squareRoot())
        return Tensor.broadcast(mean, noise()) { $0 + deviation * $1 }
    }
}

/// diffusers' PNDMScheduler with `skip_prk_steps` (SD 1.x's default): pseudo linear
/// multistep (PLMS), which calls the UNet steps + 1 times.
public struct PNDMScheduler: Scheduler {
    public let timesteps: [Float]
    let schedule: SchedulerSchedule
    let stride: Int
    var outputs: [Tensor] = []
    var counter = 0
    var firstSample: Tensor?

    init(schedule: SchedulerSchedule, steps: Int) {
        self.schedule = schedule
        let stride = schedule.trainSteps / steps
        let offset = schedule.stepsOffset
        self.stride = stride
        let ascending = (0..<steps).map { $0 * stride + offset }
        // The second-to-last step repeats: PLMS needs two model calls to start.
        let plms = Array(ascending.dropLast()) + [ascending[max(0, ascending.count - 2)], ascending.last!]
        timesteps = plms.reversed().map(Float.init)
    }

    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, index: Int) -> Tensor {
        addNoiseAlpha(original, noise: noise, alphaCumprod: schedule.alphasCumprod[Int(timesteps[index])])
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) -> Tensor {
        var timestep = Int(timesteps[index])
        var previous = timestep - stride
        if counter != 1 {
            outputs = Array(outputs.suffix(3)) + [modelOutput]
        } else {
            previous = timestep
            timestep += stride
        }
        var current = sample
        let output: Tensor
        if outputs.count == 1 && counter == 0 {
            output = modelOutput
            firstSample = sample
        } else if outputs.count == 1 && counter == 1 {
            output = Tensor.broadcast(modelOutput, outputs[0]) { ($0 + $1) / 2 }
            current = firstSample!
            firstSample = nil
        } else if outputs.count == 2 {
            output = Tensor.broadcast(outputs[1], outputs[0]) { (3 * $0 - $1) / 2 }
        } else if outputs.count == 3 {
            let a = outputs[2]
            let b = outputs[1]
            let c = outputs[0]
            output = Tensor.broadcast(Tensor.broadcast(a, b) { 23 * $0 - 16 * $1 }, c) { ($0 + 5 * $1) / 12 }
        } else {
            let a = outputs[3]
            let b = outputs[2]
            let c = outputs[1]
            let d = outputs[0]
            let ab = Tensor.broadcast(a, b) { 55 * $0 - 59 * $1 }
            let cd = Tensor.broadcast(c, d) { 37 * $0 - 9 * $1 }
            output = Tensor.broadcast(ab, cd) { ($0 + $1) / 24 }
        }
        counter += 1
        return previousSample(current, timestep: timestep, previous: previous, output: output)
    }

    func previousSample(_ sample: Tensor, timestep: Int, previous: Int, output: Tensor) -> Tensor {
        let alpha = schedule.alphasCumprod[timestep]
        let alphaPrevious = previous >= 0 ? schedule.alphasCumprod[previous] : schedule.alphasCumprod[0]
        let beta = 1 - alpha
        let betaPrevious = 1 - alphaPrevious
        var epsilon = output
        if schedule.prediction == .vPrediction {
            let (a, b) = (Float(alpha.squareRoot()), Float(beta.squareRoot()))
            epsilon = Tensor.broadcast(output, sample) { a * $0 + b * $1 }
        }
        let sampleCoefficient = Float((alphaPrevious / alpha).squareRoot())
        let denominator = alpha * betaPrevious.squareRoot() + (alpha * beta * alphaPrevious).squareRoot()
        let outputCoefficient = Float((alphaPrevious - alpha) / denominator)
        return Tensor.broadcast(sample, epsilon) { sampleCoefficient * $0 - outputCoefficient * $1 }
    }
}
