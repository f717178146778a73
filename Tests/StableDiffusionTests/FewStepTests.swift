import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers run of the tiny SD 1.5 model with a few-step shortcut (Tools/make_few_step_fixtures.py,
/// Fixtures/few_step.json): tomesd's token merging, the DeepCache package's feature reuse, or LCM without guidance.
struct FewStepCase: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let sampler: String
    /// `tomesd.apply_patch(pipe, ratio=tome, use_rand=False)`; nil: not applied.
    let tome: Double?
    /// `DeepCacheSDHelper.set_params(cache_interval, cache_branch_id)`; nil: not applied.
    let deepcache: [Int]?
    /// A LoRA file of Fixtures/loras/ loaded at weight 1 on the UNet (the prompt was encoded without it); nil: none.
    let lora: String?
    let run: DiffusersRun
    let latents: [Float]
    var testDescription: String { name }

    private enum CodingKeys: String, CodingKey {
        case name, sampler, tome, deepcache, lora, latents
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        sampler = try container.decode(String.self, forKey: .sampler)
        tome = try container.decodeIfPresent(Double.self, forKey: .tome)
        deepcache = try container.decodeIfPresent([Int].self, forKey: .deepcache)
        lora = try container.decodeIfPresent(String.self, forKey: .lora)
        latents = try container.decode([Float].self, forKey: .latents)
        run = try DiffusersRun(from: decoder)
    }

    /// The case's settings for the pipeline, its shortcut included.
    func settings() throws -> Pipeline.Settings {
        var settings = try run.settings.pipeline(sampler: sampler)
        settings.tokenMergingRatio = tome ?? 0
        if let deepcache { (settings.deepCacheInterval, settings.deepCacheBranch) = (deepcache[0], deepcache[1]) }
        return settings
    }
}

/// The tiny SD 1.5 pipeline (shared weights).
private func tinyPipeline() throws -> Pipeline { try Pipeline(weights: try NetworkFixtures.model("tiny-sd1")) }

/// Samples `settings` with `fixture`'s prompt and negative prompt, encoded by `text` (default: `pipeline`).
private func latents(_ pipeline: Pipeline, _ fixture: FewStepCase, _ settings: Pipeline.Settings, text: Pipeline? = nil) throws -> Tensor {
    let encoder = (text ?? pipeline).textEncoder
    return try pipeline.sample(
        conditional: encoder([fixture.run.ids]), unconditional: encoder([fixture.run.negativeIDs]), settings: settings)
}

/// The largest difference between two lists of numbers.
private func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
}

@Test(arguments: try fixtureCases("few_step.json", as: FewStepCase.self))
func fewStepShortcutsMatchTheirReferencePackages(_ fixture: FewStepCase) throws {
    let pipeline = try tinyPipeline()
    var sampler = pipeline
    if let lora = fixture.lora {
        // The LCM-LoRA path: a LoRA over the attention and resnet convolutions, then LCM's 4 unguided steps.
        let file = try LoRAFile.load(loraFixtures.appendingPathComponent(lora + ".safetensors"))
        let (patched, report) = try NetworkFixtures.model("tiny-sd1").applying([WeightedLoRA(file: file, weight: 1)])
        #expect(report.unet.count > 0)
        sampler = try Pipeline(weights: patched)
    }
    let result = try latents(sampler, fixture, try fixture.settings(), text: pipeline)
    #expect(result.shape == fixture.run.latentsShape)
    let error = largestDifference(result.scalars, fixture.latents)
    #expect(error < 1e-3, "\(fixture.name): final latents differ from the reference package's by \(error)")
}

/// The shortcuts change the picture, so the parity above is not the full computation's parity over again.
@Test func fewStepFixturesDifferFromTheFullComputation() throws {
    let cases = try fixtureCases("few_step.json", as: FewStepCase.self)
    let full = try #require(cases.first { $0.name == "full" })
    for fixture in cases where fixture.run.settings.batch == 1 && fixture.sampler == "euler" && fixture.name != "full" {
        #expect(largestDifference(fixture.latents, full.latents) > 1e-2, "\(fixture.name) equals the full computation")
    }
    let lcm = try #require(cases.first { $0.sampler == "lcm" && $0.lora == nil })
    let lcmLoRA = try #require(cases.first { $0.sampler == "lcm" && $0.lora != nil })
    #expect(largestDifference(lcmLoRA.latents, lcm.latents) > 1e-2, "the LoRA does not change the LCM render")
}

/// Ratio 0 and interval 1 are the full computation, bit for bit, whatever the branch; the same seed twice with
/// both shortcuts on gives the same bytes.
@Test func shortcutsOffAreTheFullComputationAndOnAreDeterministic() throws {
    let pipeline = try tinyPipeline()
    let fixture = try #require(try fixtureCases("few_step.json", as: FewStepCase.self).first { $0.name == "full" })
    var settings = try fixture.run.settings.pipeline(sampler: "euler_a")
    settings.batch = 2
    let full = try latents(pipeline, fixture, settings)
    var off = settings
    (off.tokenMergingRatio, off.deepCacheInterval, off.deepCacheBranch) = (0, 1, 5)
    #expect(try latents(pipeline, fixture, off).scalars == full.scalars)
    var on = settings
    (on.tokenMergingRatio, on.deepCacheInterval, on.deepCacheBranch) = (0.5, 3, 1)
    let first = try latents(pipeline, fixture, on)
    #expect(try latents(pipeline, fixture, on).scalars == first.scalars)
    #expect(first.scalars != full.scalars)
    #expect(pipeline.decode(first) == pipeline.decode(try latents(pipeline, fixture, on)))
}

/// Out-of-range shortcut settings are refused before sampling, each in one line naming the setting.
@Test func badShortcutSettingsAreRefused() throws {
    let pipeline = try tinyPipeline()
    let fixture = try #require(try fixtureCases("few_step.json", as: FewStepCase.self).first)
    for (edit, words) in [
        ({ (s: inout Pipeline.Settings) in s.tokenMergingRatio = 0.8 }, "token merging ratio must be 0...0.75"),
        ({ (s: inout Pipeline.Settings) in s.deepCacheInterval = 0 }, "DeepCache interval must be at least 1"),
        ({ (s: inout Pipeline.Settings) in s.deepCacheBranch = 9 }, "DeepCache branch must be 0...8 for this UNet"),
    ] {
        var settings = try fixture.settings()
        edit(&settings)
        #expect(throws: SamplingError.self) { try latents(pipeline, fixture, settings) }
        do { _ = try latents(pipeline, fixture, settings) } catch { #expect("\(error)".contains(words), "\(error)") }
    }
}
