import FarmModel
import Foundation
import Imaging
import JobSpec
import JobStore
import Postgres
import StableDiffusion
import Tensors
import Testing
import Worker

/// What `farm render` and a worker do with the same task must be the same: the default size is the
/// model's native one, and the PNG's `parameters` text comes from one writer.
private func scratchFolder() throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("generation-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

/// Renders `task` the way a worker does (the bundled models, no inputs but `inputs`).
private func workerImage(_ task: TaskParameters, inputs: [String: Data] = [:]) throws -> PNGImage {
    let renderer = try DiffusionRenderer(modelsFolder: nil)
    return try renderer.render(task, inputs: inputs, previewEvery: 0, preview: { _, _ in }, progress: { _, _ in true })
}

@Test func renderDefaultsToTheModelsNativeSize() throws {
    let folder = try scratchFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    let out = folder.appendingPathComponent("demo.png").path
    let result = try runFarm(["render", "--model", "demo", "--prompt", "a red circle", "--steps", "2", "--out", out])
    #expect(result.status == 0, "\(result.stderr)")
    let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
    // The demo UNet's sample size is 16 and its VAE scales by 4: 64 × 64, not 512 × 512.
    #expect(image.width == 64 && image.height == 64)
    #expect(image.textValue("parameters")?.contains("Size: 64x64") == true)
}

@Test func tasksWithoutASizeRenderAtTheModelsNativeSize() throws {
    let spec = try JobSpec.parse("model: demo\nitems: [{prompt: a red circle, steps: 2}]", file: "job.yaml")
    #expect(spec.tasks[0].width == nil && spec.tasks[0].height == nil, "a spec without a size leaves it to the model")
    let image = try workerImage(spec.tasks[0])
    #expect(image.width == 64 && image.height == 64)
    var sized = spec.tasks[0]
    (sized.width, sized.height) = (32, 48)
    let explicit = try workerImage(sized)
    #expect(explicit.width == 32 && explicit.height == 48)
}

@Test func farmRenderAndTheWorkerWriteTheSameParametersText() throws {
    let folder = try scratchFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    // txt2img with every field the text carries.
    var task = TaskParameters(
        prompt: "a (blue:1.2) square, BREAK sky", negativePrompt: "blurry", model: "demo", width: 64,
        height: 64, steps: 3, cfgScale: 5, sampler: "dpmpp_2m_karras", seed: 42)
    task.clipSkip = 2
    let out = folder.appendingPathComponent("t2i.png").path
    var result = try runFarm([
        "render", "--model", "demo", "--prompt", task.prompt, "--negative", task.negativePrompt,
        "--width", "64", "--height", "64", "--steps", "3", "--cfg", "5", "--sampler", "dpmpp_2m_karras",
        "--seed", "42", "--clip-skip", "2", "--out", out,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let rendered = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out))).textValue("parameters")
    let worker = try workerImage(task).textValue("parameters")
    #expect(rendered != nil && rendered == worker)
    #expect(
        worker?.contains("Sampler: DPM++ 2M Karras, CFG scale: 5.0, Seed: 42, Size: 64x64, Model: demo, Clip skip: 2") == true,
        "\(worker ?? "no text")")

    // Inpainting: the strength and mask blur lines too.
    let source = try PNGImage(width: 64, height: 64, format: .rgb, pixels: (0..<(64 * 64 * 3)).map { UInt8($0 % 251) })
    let mask = try PNGImage(width: 64, height: 64, format: .gray, pixels: (0..<(64 * 64)).map { $0 % 64 < 32 ? 255 : 0 })
    let sourceData = try source.pngData()
    let maskData = try mask.pngData()
    let sourcePath = folder.appendingPathComponent("source.png")
    let maskPath = folder.appendingPathComponent("mask.png")
    try sourceData.write(to: sourcePath)
    try maskData.write(to: maskPath)
    var inpaint = TaskParameters(
        prompt: "a red circle", model: "demo", width: 64, height: 64, steps: 4, cfgScale: 7,
        sampler: "euler_a", seed: 3)
    (inpaint.initImage, inpaint.mask, inpaint.strength) = (SHA256.hex(of: sourceData), SHA256.hex(of: maskData), 0.5)
    let inpaintOut = folder.appendingPathComponent("inpaint.png").path
    result = try runFarm([
        "render", "--model", "demo", "--prompt", "a red circle", "--steps", "4", "--cfg", "7",
        "--sampler", "euler_a", "--seed", "3", "--init-image", sourcePath.path, "--mask", maskPath.path,
        "--strength", "0.5", "--out", inpaintOut,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let renderedInpaint = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: inpaintOut))).textValue("parameters")
    let workerInpaint = try workerImage(inpaint, inputs: [inpaint.initImage!: sourceData, inpaint.mask!: maskData])
        .textValue("parameters")
    #expect(renderedInpaint != nil && renderedInpaint == workerInpaint)
    #expect(
        workerInpaint?.hasSuffix("Sampler: Euler a, CFG scale: 7.0, Seed: 3, Size: 64x64, Model: demo, Denoising strength: 0.5, Mask blur: 4")
            == true,
        "\(workerInpaint ?? "no text")")
}

/// Runs `farm bench --blas-only` with `environment` added to (and `OPENBLAS_CORETYPE` removed from) this
/// process's, and returns what it printed.
private func blasReport(_ environment: [String: String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = farmBinary
    process.arguments = ["bench", "--blas-only"]
    var variables = ProcessInfo.processInfo.environment
    variables["OPENBLAS_CORETYPE"] = nil
    variables.merge(environment) { $1 }
    process.environment = variables
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Test func aGenericBLASCoreIsReplacedButAUsersChoiceStands() throws {
    let features = BLASCore.Features.current
    // As OpenBLAS 0.3.21 does on Sapphire Rapids: it starts on Prescott's SSE3 kernels.
    let fallback = try blasReport(["FARM_TEST_BLAS_LIBRARY_CORE": "Prescott"])
    #expect(fallback.status == 0, "\(fallback.output)")
    if features.avx2 {
        let expected = BLASCore.replacement(for: "Prescott", features: features, userSetting: nil)!
        #expect(fallback.output.contains("BLAS core: \(expected) (OpenBLAS chose the generic Prescott; replaced"), "\(fallback.output)")
    }
    #expect(
        fallback.output.contains("sgemm: ") && fallback.output.contains("sgemm check: largest error"), "products on the replaced core must be right")
    let user = try blasReport(["OPENBLAS_CORETYPE": "Prescott"])
    #expect(user.status == 0 && user.output.contains("BLAS core: Prescott (set by OPENBLAS_CORETYPE)"), "\(user.output)")
}

/// Bad input to the CLI is one plain line and exit status 2; a mask of another size than its image is refused from
/// the PNG headers, at submit and at the worker.
@Test func inputErrorsAreOneLineAndMasksAreCheckedFromTheirHeaders() throws {
    let (conninfo, _) = try farmDatabase()
    let folder = try scratchFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    func oneLine(_ result: (status: Int32, stdout: String, stderr: String), _ text: String, _ what: String) {
        #expect(
            result.status == 2 && result.stderr.hasPrefix("farm: ") && result.stderr.contains(text)
                && result.stderr.split(separator: "\n").count == 1, "\(what): \(result.status) \(result.stderr)")
    }
    oneLine(
        try runFarmCapturing(["fetch", "999999", "--database", conninfo, "--out", folder.path]), "job 999999 does not exist",
        "fetch of an unknown job")
    let file = folder.appendingPathComponent("taken")
    try Data("x".utf8).write(to: file)
    let job = try JobStore(connection: try Connection(conninfo)).enqueue(name: "j", model: "m", tasks: [TaskParameters(prompt: "a", model: "m")])
    oneLine(try runFarmCapturing(["fetch", String(job), "--database", conninfo, "--out", file.path]), "is a file", "fetch --out FILE")
    let (image, _) = try writeRandomPNG(folder, name: "image.png", width: 64, height: 64, seed: 1)
    let (bigMask, _) = try writeRandomPNG(folder, name: "mask.png", width: 640, height: 640, seed: 2, gray: true)
    oneLine(
        try runFarmCapturing([
            "render", "--model", "demo", "--prompt", "x", "--init-image", image.path, "--outpaint", "-8,0,0,0",
            "--out", folder.appendingPathComponent("o.png").path,
        ]), "--outpaint must be", "a negative outpaint")
    oneLine(
        try runFarmCapturing([
            "submit", "--prompt", "x", "--model", "demo", "--init-image", image.path, "--mask", bigMask.path,
            "--database", conninfo,
        ]), "--mask is 640x640 but --init-image is 64x64", "a mask of another size")
    oneLine(
        try runFarmCapturing(["submit", "--prompt", "x", "--model", "demo", "--seed", "9223372036854775808", "--database", conninfo]),
        "seed", "a seed past int64")

    // At the worker: refused as bad input, naming both sizes, before anything is decoded.
    let imageData = try Data(contentsOf: image)
    let maskData = try Data(contentsOf: bigMask)
    var task = TaskParameters(prompt: "a red circle", model: "demo", steps: 2)
    (task.initImage, task.mask) = (SHA256.hex(of: imageData), SHA256.hex(of: maskData))
    #expect {
        try workerImage(task, inputs: [task.initImage!: imageData, task.mask!: maskData])
    } throws: { error in
        guard let error = error as? RenderError else { return false }
        return error.kind == .input && error.message == "the mask is 640x640 but the image is 64x64"
    }
    #expect(PNGImage.declaredSize(of: maskData)! == (640, 640) && PNGImage.declaredSize(of: Data("NOT A PNG".utf8)) == nil)
}
