import Tensors

/// SDXL with a refiner, as diffusers' ensemble of experts: the base denoises the first part of the schedule
/// (`denoising_end`), the refiner the rest (`denoising_start`) from the base's latents, each with its own text
/// conditioning, scheduler settings and fresh generators seeded like the base's.
extension Pipeline {
    /// Runs the base to the hand-off at `switchAt` (a fraction of the training schedule) and `refiner` from there;
    /// returns the refiner's final latents. `progress(step, total)` counts both parts' steps together.
    public func sample(
        conditional: TextConditioning, unconditional: TextConditioning, refiner: Pipeline,
        refinerConditional: TextConditioning, refinerUnconditional: TextConditioning, switchAt: Double, settings: Settings,
        onStep: ((Int, Tensor) -> Void)? = nil, progress: (Int, Int) -> Bool = { _, _ in true }
    ) throws -> Tensor {
        let baseSteps = try HandOff.stepCount(
            stoppingAt: switchAt, scheduler: try settings.sampler.make(config: schedulerConfig, steps: settings.steps, eta: settings.eta),
            config: schedulerConfig)
        let refinerScheduler = try settings.sampler.make(config: refiner.schedulerConfig, steps: settings.steps, eta: settings.eta)
        let refinerSteps =
            refinerScheduler.timesteps.count
            - (try HandOff.firstStep(continuingAt: switchAt, scheduler: refinerScheduler, config: refiner.schedulerConfig))
        let total = baseSteps + refinerSteps
        let handed = try sample(
            conditional: conditional, unconditional: unconditional, settings: settings, handOff: .stopAt(switchAt), onStep: onStep,
            progress: { step, _ in progress(step, total) })
        return try refiner.sample(
            conditional: refinerConditional, unconditional: refinerUnconditional, settings: settings,
            handOff: .continueFrom(latents: handed, at: switchAt), onStep: { onStep?(baseSteps + $0, $1) },
            progress: { step, _ in progress(baseSteps + step, total) })
    }
}
