/// How each sampler name becomes a scheduler.
extension SamplerName {
    /// The timestep spacing of diffusers' scheduler class for this sampler, used when the model's
    /// config does not set one.
    public var defaultSpacing: TimestepSpacing {
        switch self {
        case .ddim, .ddpm, .pndm, .lcm: return .leading
        case .lms, .euler, .eulerAncestral, .heun, .dpmpp2m, .dpmpp2mKarras, .dpm2, .unipc, .dpmppSDEKarras: return .linspace
        }
    }

    /// A scheduler of this kind for `steps` steps.
    public func make(config: SchedulerConfig, steps: Int, eta: Float = 0) throws -> any Scheduler {
        guard steps >= 1 && steps <= config.numTrainTimesteps else {
            throw SamplingError("steps must be 1...\(config.numTrainTimesteps), got \(steps)")
        }
        let schedule = try SchedulerSchedule(config: config, defaultSpacing: defaultSpacing)
        switch self {
        case .ddim: return DDIMScheduler(schedule: schedule, steps: steps, eta: eta)
        case .ddpm: return DDPMScheduler(schedule: schedule, steps: steps)
        case .pndm: return PNDMScheduler(schedule: schedule, steps: steps)
        case .lms: return LMSScheduler(schedule: schedule, steps: steps)
        case .heun: return HeunScheduler(schedule: schedule, steps: steps)
        case .euler: return EulerScheduler(schedule: schedule, steps: steps, ancestral: false)
        case .eulerAncestral: return EulerScheduler(schedule: schedule, steps: steps, ancestral: true)
        case .dpmpp2m: return DPMSolverMultistepScheduler(schedule: schedule, steps: steps, karras: false)
        case .dpmpp2mKarras: return DPMSolverMultistepScheduler(schedule: schedule, steps: steps, karras: true)
        case .dpm2: return DPM2Scheduler(schedule: schedule, steps: steps)
        case .unipc: return UniPCScheduler(schedule: schedule, steps: steps)
        case .lcm: return try LCMScheduler(schedule: schedule, steps: steps)
        case .dpmppSDEKarras: return DPMSolverSDEScheduler(schedule: schedule, steps: steps)
        }
    }
}
