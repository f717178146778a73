import FarmModel
import Foundation
import Generation
import JobSpec
import Testing

/// A request with variation seeds, seed resize and hires fix set.
private func finishingRequest() -> GenerationRequest {
    var request = GenerationRequest(prompt: "a fox", model: "sd15")
    (request.width, request.height, request.seed) = (512, 512, 7)
    (request.subseed, request.subseedStrength, request.seedResizeFrom) = (100, 0.25, PixelSize(width: 512, height: 768))
    var hires = GenerationRequest.Hires(scale: 1.5)
    (hires.upscaler, hires.steps, hires.denoise, hires.prompt) = ("bicubic-antialiased", 12, 0.55, "a fox, detailed")
    request.hires = hires
    return request
}

@Test func finishingParametersTextWritesTheWebUIKeys() throws {
    let request = finishingRequest()
    try request.validate()
    #expect(
        request.parametersText(width: 512, height: 512, index: 1)
            == "a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 8, Size: 512x512, Model: sd15, Variation seed: 101, "
            + "Variation seed strength: 0.25, Seed resize from: 512x768, Denoising strength: 0.55, Hires upscale: 1.5, Hires steps: 12, "
            + "Hires upscaler: Latent (bicubic antialiased), Hires prompt: \"a fox, detailed\"")
    // Strength 0 writes no variation; a target size writes Hires resize; img2img keeps its own Denoising strength.
    var plain = request
    (plain.subseedStrength, plain.seedResizeFrom, plain.hires) = (0, nil, GenerationRequest.Hires(width: 1024, height: 768))
    #expect(
        plain.parametersText(width: 512, height: 512).hasSuffix(
            "Model: sd15, Denoising strength: 0.7, Hires resize: 1024x768, Hires upscaler: Latent"))
}

@Test func hiresTargetsFollowTheWebUI() {
    #expect(GenerationRequest.Hires(scale: 1.5).target(width: 512, height: 768).final == PixelSize(width: 768, height: 1152))
    #expect(GenerationRequest.Hires(width: 1024).target(width: 512, height: 768).final == PixelSize(width: 1024, height: 1536))
    #expect(GenerationRequest.Hires(height: 1024).target(width: 768, height: 512).final == PixelSize(width: 1536, height: 1024))
    // Both sides with another aspect: cover, then crop centred.
    let both = GenerationRequest.Hires(width: 1024, height: 1024).target(width: 512, height: 768)
    #expect(both.upscaled == PixelSize(width: 1024, height: 1536) && both.final == PixelSize(width: 1024, height: 1024))
    #expect(GenerationRequest.Hires().target(width: 512, height: 512).final == PixelSize(width: 1024, height: 1024))
}

@Test func finishingFieldsAreValidatedByName() {
    let cases: [(edit: (inout GenerationRequest) -> Void, key: String, flag: String)] = [
        ({ $0.subseedStrength = 1.5 }, "subseed_strength", "--subseed-strength"),
        ({ ($0.subseed, $0.subseedStrength) = (nil, 0.5) }, "subseed_strength", "--subseed-strength"),
        ({ $0.subseed = UInt64(Int64.max) + 1 }, "subseed", "--subseed"),
        ({ $0.seedResizeFrom = PixelSize(width: 0, height: 64) }, "seed_resize_from", "--seed-resize-from"),
        ({ $0.resizeMode = .cropAndResize }, "resize_mode", "--resize-mode"),
        ({ $0.hires?.scale = 0.5 }, "hires_scale", "--hires-scale"),
        ({ $0.hires = GenerationRequest.Hires(scale: 2, width: 1024) }, "hires_scale", "--hires-scale"),
        ({ $0.hires = GenerationRequest.Hires(width: 1020) }, "hires_width", "--hires-width"),
        ({ $0.hires?.denoise = 0 }, "hires_denoise", "--hires-denoise"),
        ({ $0.hires?.steps = 0 }, "hires_steps", "--hires-steps"),
        ({ $0.hires?.negativePrompt = "a\u{0}b" }, "hires_negative_prompt", "--hires-negative"),
        ({ $0.hires?.scale = 8 }, "hires_scale", "--hires-scale"),
        ({ $0.initImage = "x.png" }, "hires_scale", "--hires-scale"),
        ({ $0.hires = GenerationRequest.Hires() }, "hires_scale", "--hires-scale"),
    ]
    for (edit, key, flag) in cases {
        var request = finishingRequest()
        edit(&request)
        #expect(throws: InvalidGenerationRequest.self) { try request.validate() }
        do { try request.validate() } catch let error as InvalidGenerationRequest {
            #expect(error.field.key == key && error.field.flag == flag, "\(error.keyed)")
        } catch {}
    }
}

@Test func finishingNamesParse() throws {
    #expect(try ResizeMode(parsing: "2") == .resizeAndFill)
    #expect(try ResizeMode(parsing: "Crop-And-Resize") == .cropAndResize)
    #expect(try ResizeMode(parsing: "latent") == .latentUpscale)
    #expect(throws: InvalidGenerationRequest.self) { try ResizeMode(parsing: "4") }
    #expect(HiresUpscaler(parsing: "Latent (bicubic antialiased)") == .latent(.bicubicAntialiased))
    #expect(HiresUpscaler(parsing: "nearest-exact") == .latent(.nearestExact))
    #expect(HiresUpscaler(parsing: "latent") == .latent(.bilinear))
    #expect(HiresUpscaler(parsing: "4x-UltraSharp") == .model("4x-UltraSharp"))
    #expect(PixelSize(parsing: "512,768") == PixelSize(width: 512, height: 768))
    #expect(PixelSize(parsing: "512x768") == PixelSize(width: 512, height: 768))
    #expect(PixelSize(parsing: "512") == nil)
}

@Test func finishingTaskFieldsTravelAndOldTasksStillDecode() throws {
    var request = finishingRequest()
    (request.tokenMergingRatio, request.deepCacheInterval, request.deepCacheBranch) = (0.5, 3, 1)
    let task = TaskParameters(request)
    #expect(GenerationRequest(task) == request)
    let json = try JSONEncoder().encode(task)
    let text = String(decoding: json, as: UTF8.self)
    for key in [
        "\"subseed\":100", "\"subseed_strength\":0.25", "\"seed_resize_from\":[512,768]", "\"hires_scale\":1.5", "\"hires_denoise\":0.55",
        "\"token_merging_ratio\":0.5", "\"deepcache_interval\":3", "\"deepcache_branch\":1",
    ] {
        #expect(text.contains(key), "\(text)")
    }
    #expect(try JSONDecoder().decode(TaskParameters.self, from: json) == task)
    // A task stored before these fields existed.
    let old = #"{"prompt":"a fox","negative_prompt":"","model":"sd15","steps":20,"cfg_scale":7.5,"sampler":"euler_a","seed":3}"#
    let decoded = try JSONDecoder().decode(TaskParameters.self, from: Data(old.utf8))
    #expect(decoded.subseed == nil && decoded.hiresScale == nil && decoded.resizeMode == nil)
    #expect(GenerationRequest(decoded).hires == nil)
    var bad = task
    bad.resizeMode = 7
    bad.initImage = String(repeating: "ab", count: 32)
    bad.hiresScale = nil
    #expect(
        throws: ValidationFailure(
            field: "resize_mode", message: "must be 0 (just resize), 1 (crop and resize), 2 (resize and fill) or 3 (latent upscale), got 7")
    ) {
        try bad.validate()
    }
}

@Test func specsSweepSubseedsAndSetFinishingFields() throws {
    let yaml = """
        name: variations
        model: sd15
        defaults: {prompt: a fox, seed: 7, seed_resize_from: "512,768", hires_scale: 2, hires_upscaler: bicubic, hires_negative: blurry}
        sweep:
          subseed: 1-3
          subseed_strength: [0.1, 0.2]
        """
    let spec = try JobSpec.parse(yaml, file: "v.yaml")
    #expect(spec.tasks.count == 6)
    #expect(spec.tasks.map(\.subseed) == [1, 1, 2, 2, 3, 3])
    #expect(spec.tasks.map(\.subseedStrength) == [0.1, 0.2, 0.1, 0.2, 0.1, 0.2])
    #expect(spec.tasks.allSatisfy { $0.seed == 7 && $0.seedResizeFrom == [512, 768] && $0.hiresScale == 2 })
    #expect(spec.tasks.allSatisfy { $0.hiresUpscaler == "bicubic" && $0.hiresNegativePrompt == "blurry" })
    let csv = "prompt,init_image,resize_mode\na fox,\(String(repeating: "ab", count: 32)),crop\n"
    #expect(try JobSpec.parse(csv, file: "x.csv", overrides: ["model": "sd15"]).tasks.first?.resizeMode == 1)
    #expect(throws: JobSpecError.self) { try JobSpec.parse("prompt,resize_mode\na fox,sideways\n", file: "x.csv", overrides: ["model": "sd15"]) }
    let error = #expect(throws: JobSpecError.self) {
        try JobSpec.parse("prompt,hires_scale,hires_denoise\na fox,2,2\n", file: "x.csv", overrides: ["model": "sd15"])
    }
    #expect(error?.description.contains("hires_denoise: must be in (0, 1]") == true, "\(String(describing: error))")
}
