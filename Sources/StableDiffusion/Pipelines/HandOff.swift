import Tensors

/// The SDXL base-to-refiner hand-off, as diffusers' `denoising_end` (base) and `denoising_start` (refiner): the
/// fraction is of the training schedule's timesteps (0.8: the base runs the noisiest 80 %, down to timestep 200),
/// not of the step count.
public enum HandOff {
    /// Base: run the steps whose timesteps are at or above the cut, return the latents there.
    case stopAt(Double)
    /// Refiner: start from these latents (as the base returned them, no noise added) at the first step below the cut.
    case continueFrom(latents: Tensor, at: Double)

    /// The training timestep where a hand-off at `fraction` cuts: round(T − fraction·T).
    static func cutoff(_ fraction: Double, config: SchedulerConfig) throws -> Float {
        guard fraction > 0 && fraction < 1 else { throw SamplingError("the refiner switch must be in (0, 1), got \(fraction)") }
        let steps = Double(config.numTrainTimesteps)
        return Float(Int((steps - fraction * steps).rounded(.toNearestOrEven)))
    }

    /// How many of the schedule's steps the base runs: those at or above the cut.
    static func stepCount(stoppingAt fraction: Double, scheduler: any Scheduler, config: SchedulerConfig) throws -> Int {
        let cut = try cutoff(fraction, config: config)
        return scheduler.timesteps.filter { $0 >= cut }.count
    }

    /// The refiner's first step: the steps below the cut, plus one for a second-order sampler whose count would
    /// otherwise split a step between its two evaluations (diffusers' `get_timesteps`).
    static func firstStep(continuingAt fraction: Double, scheduler: any Scheduler, config: SchedulerConfig) throws -> Int {
        let cut = try cutoff(fraction, config: config)
        var count = scheduler.timesteps.filter { $0 < cut }.count
        if scheduler.order == 2 && count % 2 == 0 { count += 1 }
        guard count > 0 && count <= scheduler.timesteps.count else {
            throw SamplingError("a refiner switch at \(fraction) leaves the refiner no steps; lower it or raise the step count")
        }
        return scheduler.timesteps.count - count
    }
}
