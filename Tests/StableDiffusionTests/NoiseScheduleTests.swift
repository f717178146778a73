import StableDiffusion
import Testing

// Reference values printed by diffusers (DDIMScheduler, SD 1.5 scheduler config, steps_offset=1).
@Test func scaledLinearScheduleMatchesDiffusers() {
    let schedule = NoiseSchedule.scaledLinear()
    #expect(schedule.trainSteps == 1000)
    #expect(abs(schedule.betas[0] - 0.00085) < 1e-12)
    #expect(abs(schedule.betas[999] - 0.012) < 1e-12)
    #expect(abs(schedule.alphasCumprod[0] - 0.99915) < 1e-9)
    #expect(abs(schedule.alphasCumprod[999] - 0.004660095) < 1e-7)
}

@Test func timestepSpacingsMatchDiffusers() {
    let schedule = NoiseSchedule.scaledLinear()
    #expect(schedule.timesteps(count: 10, spacing: .leading) == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1])
    #expect(schedule.timesteps(count: 10, spacing: .trailing) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99])
    #expect(schedule.timesteps(count: 10, spacing: .linspace) == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
    #expect(schedule.timesteps(count: 7, spacing: .trailing) == [999, 856, 713, 570, 428, 285, 142])
}
