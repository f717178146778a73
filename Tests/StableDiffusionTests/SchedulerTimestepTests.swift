import Foundation
import StableDiffusion
import Testing

// Reference values printed by diffusers 0.42.1 after set_timesteps, on SD 1.5's scheduler
// config (scaled_linear, leading spacing, steps_offset=1), which SchedulerConfig() is.

@Test func dpm2InterleavesMidpointTimestepsAsDiffusers() throws {
    let scheduler = try SamplerName.dpm2.make(config: SchedulerConfig(), steps: 6)
    let expected: [Float] = [
        831, 752.53271484375, 665, 584.9511108398438, 499, 415.8076171875, 333, 243.54501342773438,
        167, 21.442363739013672, 1,
    ]
    #expect(scheduler.timesteps.count == expected.count)
    for (actual, reference) in zip(scheduler.timesteps, expected) { #expect(abs(actual - reference) < 1e-3) }
    #expect(abs(scheduler.initNoiseSigma - 5.990506172180176) < 1e-5)
    #expect(scheduler.order == 2)
    #expect(try SamplerName.dpm2.make(config: SchedulerConfig(), steps: 1).timesteps == [1])
}

@Test func dpmppSDEKarrasTimestepsMatchDiffusers() throws {
    let scheduler = try SamplerName.dpmppSDEKarras.make(config: SchedulerConfig(), steps: 6)
    let expected: [Float] = [
        830.9999954586922, 747.7458610211692, 654.2946349528277, 537.0880739330042, 410.4855972866633,
        269.62431089084737, 153.5121488151159, 66.72444162066249, 24.64932436949874, 6.326155210791013,
        1.000000060425075,
    ]
    #expect(scheduler.timesteps.count == expected.count)
    for (actual, reference) in zip(scheduler.timesteps, expected) { #expect(abs(actual - reference) < 1e-3) }
    #expect(abs(scheduler.initNoiseSigma - 5.990506172180176) < 1e-5)
    #expect(scheduler.order == 2)
    let single = try SamplerName.dpmppSDEKarras.make(config: SchedulerConfig(), steps: 1)
    #expect(single.timesteps.count == 1 && abs(single.timesteps[0] - 1) < 1e-4)
}

@Test func uniPCSpacesStepsPlusOneAsDiffusers() throws {
    #expect(try SamplerName.unipc.make(config: SchedulerConfig(), steps: 6).timesteps == [853, 711, 569, 427, 285, 143])
    #expect(try SamplerName.unipc.make(config: SchedulerConfig(), steps: 1).timesteps == [501])
    #expect(try SamplerName.unipc.make(config: SchedulerConfig(), steps: 6).initNoiseSigma == 1)
}

@Test func lcmPicksFromItsFiftyStepGrid() throws {
    let config = SchedulerConfig()
    #expect(try SamplerName.lcm.make(config: config, steps: 6).timesteps == [999, 839, 679, 499, 339, 179])
    #expect(try SamplerName.lcm.make(config: config, steps: 4).timesteps == [999, 759, 499, 259])
    #expect(try SamplerName.lcm.make(config: config, steps: 3).timesteps == [999, 679, 339])
    #expect(try SamplerName.lcm.make(config: config, steps: 1).timesteps == [999])
    let all = try SamplerName.lcm.make(config: config, steps: 50).timesteps
    #expect(all.count == 50 && all.first == 999 && all.last == 19)
    #expect(throws: SamplingError("lcm takes at most 50 steps (its distillation grid), got 51")) {
        try SamplerName.lcm.make(config: config, steps: 51)
    }
}

@Test func newSamplersParseByTheirUserFacingNames() throws {
    #expect(try SamplerName(parsing: "dpm2") == .dpm2)
    #expect(try SamplerName(parsing: "UniPC") == .unipc)
    #expect(try SamplerName(parsing: "lcm") == .lcm)
    #expect(try SamplerName(parsing: "dpmpp_sde_karras") == .dpmppSDEKarras)
}

/// A scheduler config that lists `timestep_spacing` in `_use_default_values` (or leaves it out)
/// gets each sampler's own spacing, as diffusers' `from_config` gives each scheduler class its
/// default; the value written beside the list is ignored, as diffusers ignores it.
@Test func listedSpacingFallsBackToEachSamplersDefault() throws {
    let json = #"""
        {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
         "steps_offset": 1, "timestep_spacing": "leading", "_use_default_values": ["timestep_spacing"]}
        """#
    let config = try JSONDecoder().decode(SchedulerConfig.self, from: Data(json.utf8))
    #expect(config.timestepSpacing == nil)
    // diffusers 0.42.1: DPMSolverMultistepScheduler and EulerDiscreteScheduler default to linspace, DDIM to leading.
    #expect(try SamplerName.dpmpp2m.make(config: config, steps: 6).timesteps == [999, 832, 666, 500, 333, 166])
    let euler = try SamplerName.euler.make(config: config, steps: 6)
    #expect(zip(euler.timesteps, [999, 799.2, 599.4, 399.6, 199.8, 0] as [Float]).allSatisfy { abs($0 - $1) < 1e-2 }, "\(euler.timesteps)")
    #expect(abs(euler.initNoiseSigma - 14.614646911621094) < 1e-4)
    #expect(try SamplerName.ddim.make(config: config, steps: 6).timesteps == [831, 665, 499, 333, 167, 1])
    // Written and not listed, the value holds for every sampler.
    let explicit = try JSONDecoder().decode(SchedulerConfig.self, from: Data(json.replacingOccurrences(of: "\"timestep_spacing\"]", with: "]").utf8))
    #expect(explicit.timestepSpacing == "leading")
    #expect(try SamplerName.dpmpp2m.make(config: explicit, steps: 6).timesteps == [853, 711, 569, 427, 285, 143])
}

/// A VAE config that lists `scaling_factor` in `_use_default_values` is read with diffusers'
/// default, 0.18215, whatever value is written beside it (diffusers reads it so).
@Test func listedScalingFactorIsDiffusersDefault() throws {
    let listed = #"{"scaling_factor": 0.47072, "_use_default_values": ["scaling_factor", "act_fn"]}"#
    #expect(try JSONDecoder().decode(VAEConfig.self, from: Data(listed.utf8)).scalingFactor == 0.18215)
    let written = #"{"scaling_factor": 0.47072, "_use_default_values": ["act_fn"]}"#
    #expect(try JSONDecoder().decode(VAEConfig.self, from: Data(written.utf8)).scalingFactor == 0.47072)
}
