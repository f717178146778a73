import Foundation
import Tensors

/// diffusers' PNDMScheduler with `skip_prk_steps` (SD 1.x's default): pseudo linear
/// multistep (PLMS), which calls the UNet steps + 1 times.
public struct PNDMScheduler: AlphaScheduler {
    public let timesteps: [Float]
    /// The training schedule it samples.
    public let schedule: SchedulerSchedule
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
        // diffusers' PNDM class default: set_alpha_to_one false (the last step lands on ᾱ₀).
        let alphaPrevious = previous >= 0 ? schedule.alphasCumprod[previous] : ((schedule.setAlphaToOne ?? false) ? 1 : schedule.alphasCumprod[0])
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
