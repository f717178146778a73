import FarmModel
import Generation
import Testing

/// A task with every field set, its inputs as stored-image hashes.
private func fullTask() -> TaskParameters {
    var task = TaskParameters(
        prompt: "a fox", negativePrompt: "blurry", model: "sd15", width: 512, height: 768, steps: 30, cfgScale: 6.5,
        sampler: "dpmpp_2m", seed: 7)
    let hash = String(repeating: "ab", count: 32)
    (task.initImage, task.strength, task.maskBlur, task.clipSkip) = (hash, 0.6, 2, 2)
    task.controlnets = [TaskParameters.Control(model: "canny", image: hash, scale: 0.8)]
    (task.refiner, task.refinerSwitch, task.vae) = ("sdxl-refiner", 0.7, "sdxl-vae")
    return task
}

/// A task becomes a request and back without losing a field.
@Test func tasksAndRequestsConvertBothWays() {
    let task = fullTask()
    let request = GenerationRequest(task)
    #expect(request.width == 512 && request.height == 768 && request.cfgScale == 6.5 && request.effectiveClipSkip == 2)
    #expect(request.controlnets == [GenerationRequest.Control(model: "canny", image: task.initImage!, scale: 0.8)])
    #expect(request.refiner == "sdxl-refiner" && request.refinerSwitch == 0.7 && request.effectiveRefinerSwitch == 0.7)
    #expect(request.vae == "sdxl-vae")
    #expect(TaskParameters(request) == task)
    var outpainting = task
    outpainting.outpaint = [8, 0, 16, 0]
    #expect(GenerationRequest(outpainting).outpaint == GenerationRequest.Outpaint(left: 8, right: 0, top: 16, bottom: 0))
    #expect(TaskParameters(GenerationRequest(outpainting)) == outpainting)
}

/// One set of limits: a request and its task are refused for the same field and reason, named as each side names it.
@Test func requestsAndTasksShareTheirLimits() {
    let cases: [(edit: (inout GenerationRequest) -> Void, key: String, flag: String)] = [
        ({ $0.width = 20 }, "width", "--width"),
        ({ $0.height = 4096 }, "height", "--height"),
        ({ $0.steps = 501 }, "steps", "--steps"),
        ({ $0.cfgScale = .nan }, "cfg_scale", "--cfg"),
        ({ $0.seed = UInt64(Int64.max) + 1 }, "seed", "--seed"),
        ({ $0.strength = 0 }, "strength", "--strength"),
        ({ $0.clipSkip = 13 }, "clip_skip", "--clip-skip"),
        ({ $0.negativePrompt = String(repeating: "x", count: 5000) }, "negative_prompt", "--negative"),
        (
            {
                $0.mask = $0.initImage
                $0.initImage = nil
            }, "mask", "--mask"
        ),
        ({ $0.controlnets[0].scale = 11 }, "controlnets[0].scale", "--control-scale"),
        ({ $0.refinerSwitch = 1 }, "refiner_switch", "--refiner-switch"),
        ({ $0.refinerSwitch = -0.5 }, "refiner_switch", "--refiner-switch"),
        ({ $0.refiner = nil }, "refiner_switch", "--refiner-switch"),
        ({ $0.refiner = "" }, "refiner", "--refiner"),
        ({ $0.vae = "a\u{0}b" }, "vae", "--vae"),
        ({ $0.vae = "" }, "vae", "--vae"),
    ]
    for (edit, key, flag) in cases {
        var request = GenerationRequest(fullTask())
        #expect(throws: Never.self) { try request.validate() }
        edit(&request)
        var failure: InvalidGenerationRequest?
        do { try request.validate() } catch { failure = error as? InvalidGenerationRequest }
        #expect(failure?.field.key == key && failure?.field.flag == flag, "\(key): \(String(describing: failure))")
        #expect(failure?.flagged.hasPrefix("\(flag) ") == true)
        #expect(throws: ValidationFailure(field: key, message: failure?.message ?? "")) { try TaskParameters(request).validate() }
    }
}

/// The `parameters` text: the web UI's sampler name, the strength only for img2img, the model's name without its path.
@Test func parametersTextIsTheWebUIs() {
    var request = GenerationRequest(prompt: "a fox", model: "/models/sd-1.5.safetensors")
    request.negativePrompt = "blurry"
    request.sampler = "DPMPP_2M_KARRAS"
    #expect(
        request.parametersText(width: 64, height: 32, index: 2)
            == "a fox\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 2, Size: 64x32, Model: sd-1.5")
    request.initImage = "in.png"
    request.mask = "mask.png"
    request.rng = .philox
    #expect(request.parametersText(width: 64, height: 64).hasSuffix("Denoising strength: 0.75, Mask blur: 4, RNG: NV"))
    request.mask = nil
    request.outpaint = GenerationRequest.Outpaint(left: 8, right: 0, top: 0, bottom: 0)
    #expect(!request.parametersText(width: 64, height: 64).contains("Denoising strength") && request.effectiveStrength == 1)
}

/// Each refiner and VAE problem is one line naming its flag; the switch is checked only when given.
@Test func refinerAndVAEMessagesNameTheirInput() throws {
    var request = GenerationRequest(prompt: "a fox", model: "sdxl")
    request.refinerSwitch = 0.5
    #expect(throws: InvalidGenerationRequest(.refinerSwitch, "needs a refiner")) { try request.validate() }
    request.refiner = "sdxl-refiner"
    try request.validate()
    request.refinerSwitch = .infinity
    var failure: InvalidGenerationRequest?
    do { try request.validate() } catch { failure = error as? InvalidGenerationRequest }
    #expect(failure?.flagged == "--refiner-switch must be in (0, 1): the share of the steps before the refiner takes over, got inf")
    #expect(failure?.keyed.hasPrefix("refiner_switch: must be in (0, 1)") == true)
    request.refinerSwitch = nil
    #expect(request.effectiveRefinerSwitch == 0.8 && GenerationRequest.defaultRefinerSwitch == 0.8)
    // Names longer than the farm's limit are the wire's to refuse.
    var task = TaskParameters(request)
    task.vae = String(repeating: "v", count: 201)
    #expect(throws: ValidationFailure(field: "vae", message: "is 201 bytes; the limit is 200")) { try task.validate() }
    task.vae = nil
    task.refiner = String(repeating: "r", count: 201)
    #expect(throws: ValidationFailure(field: "refiner", message: "is 201 bytes; the limit is 200")) { try task.validate() }
}

/// The web UI writes the VAE after the model and the refiner with its switch at the end; neither without them.
@Test func parametersTextNamesTheRefinerAndTheVAE() {
    var request = GenerationRequest(prompt: "a fox", model: "/models/sdxl-base.safetensors")
    #expect(!request.parametersText(width: 64, height: 64).contains("VAE") && !request.parametersText(width: 64, height: 64).contains("Refiner"))
    request.vae = "/vaes/sdxl_vae.safetensors"
    request.refiner = "/models/sdxl-refiner/"
    request.rng = .philox
    #expect(
        request.parametersText(width: 1024, height: 768)
            == "a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 0, Size: 1024x768, Model: sdxl-base, VAE: sdxl_vae, RNG: NV, Refiner: sdxl-refiner, Refiner switch at: 0.8"
    )
    request.refinerSwitch = 0.65
    #expect(request.parametersText(width: 1024, height: 768).hasSuffix(", Refiner: sdxl-refiner, Refiner switch at: 0.65"))
    // The farm's task carries them to the worker's text as well.
    #expect(TaskParameters(request).parametersText(width: 8, height: 8).hasSuffix("Refiner: sdxl-refiner, Refiner switch at: 0.65"))
}
