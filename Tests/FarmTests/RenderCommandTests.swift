import Foundation
import Imaging
import StableDiffusion
import Tensors
import Testing

/// The `farm` binary next to the test bundle (swift build builds both).
let farmBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("farm")

/// Runs `farm` (or another program) and returns its exit status and standard error.
func runFarm(_ arguments: [String], executable: URL = farmBinary) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    let data = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A tiny fixture model (default: the SD 1.x one) copied to a temporary folder with text encoders that take CLIP's
/// real 49408-token vocabulary (each encoder folder it has: `text_encoder`, SDXL's `text_encoder_2`).
func tinyModelWithFullVocabulary(_ name: String = "tiny-sd1") throws -> URL {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models/\(name)")
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("render-model-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: source, to: folder)
    var state: UInt32 = 99
    for encoderName in ["text_encoder", "text_encoder_2"] {
        let encoder = folder.appendingPathComponent(encoderName)
        guard FileManager.default.fileExists(atPath: encoder.path) else { continue }
        var weights = try SafeTensorsFile(url: encoder.appendingPathComponent("model.safetensors")).allTensors()
        let width = weights["text_model.embeddings.token_embedding.weight"]!.shape[1]
        weights["text_model.embeddings.token_embedding.weight"] = Tensor(
            shape: [49408, width],
            values: (0..<(49408 * width)).map { _ in
                state = state &* 1_664_525 &+ 1_013_904_223
                return (Float(state >> 8) / Float(1 << 24) - 0.5) * 0.4
            })
        try SafeTensorsFile.write(weights, to: encoder.appendingPathComponent("model.safetensors"))
        let configURL = encoder.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["vocab_size"] = 49408
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
    }
    return folder
}

@Test func renderWritesPNGsWithParametersAndLatents() throws {
    let model = try tinyModelWithFullVocabulary()
    defer { try? FileManager.default.removeItem(at: model) }
    let out = model.appendingPathComponent("fox.png").path
    let latents = model.appendingPathComponent("fox.npy").path
    let arguments = [
        "render", "--model", model.path, "--prompt", "a (red:1.3) fox, BREAK snow", "--negative", "blurry",
        "--width", "24", "--height", "16", "--steps", "3", "--sampler", "euler", "--seed", "7", "--batch", "2",
        "--cfg", "5", "--out", out, "--save-latents", latents,
    ]
    let result = try runFarm(arguments)
    #expect(result.status == 0, "\(result.stderr)")
    for (index, seed) in [(1, 7), (2, 8)] {
        let path = out.replacingOccurrences(of: ".png", with: "-\(index).png")
        let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(image.width == 24 && image.height == 16 && image.format == .rgb)
        let parameters = try #require(image.textValue("parameters"))
        #expect(
            parameters.hasPrefix(
                "a (red:1.3) fox, BREAK snow\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, CFG scale: 5.0, Seed: \(seed), Size: 24x16"))
    }
    let npy = try Data(contentsOf: URL(fileURLWithPath: latents))
    #expect(npy.prefix(6) == Data([0x93] + Array("NUMPY".utf8)))
    let header = String(decoding: npy.dropFirst(10).prefix(Int(npy[8]) | Int(npy[9]) << 8), as: UTF8.self)
    #expect(header.contains("'shape': (2, 4, 8, 12)"))
    #expect((npy.count - 10 - Int(npy[8])) == 2 * 4 * 8 * 12 * 4)

    // Batch count: batches one after another continue the seeds, so one image per batch twice
    // gives the same pictures as one batch of two.
    let sequential = model.appendingPathComponent("seq.png").path
    var sequentialArguments = arguments
    sequentialArguments[sequentialArguments.firstIndex(of: "--batch")! + 1] = "1"
    sequentialArguments += ["--batch-count", "2", "--out", sequential]
    #expect(try runFarm(sequentialArguments).status == 0)
    for index in 1...2 {
        let a = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: sequential.replacingOccurrences(of: ".png", with: "-\(index).png"))))
        let b = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out.replacingOccurrences(of: ".png", with: "-\(index).png"))))
        #expect(a.textValue("parameters") == b.textValue("parameters"))
        #expect(zip(a.pixels, b.pixels).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
    }

    // The same seed gives the same picture.
    let first = try Data(contentsOf: URL(fileURLWithPath: out.replacingOccurrences(of: ".png", with: "-1.png")))
    #expect(try runFarm(arguments).status == 0)
    #expect(try Data(contentsOf: URL(fileURLWithPath: out.replacingOccurrences(of: ".png", with: "-1.png"))) == first)
}

@Test(arguments: [
    (["render", "--prompt", "x"], "--model"),
    (["render", "--model", "/no/such/model", "--prompt", "x"], "no such file"),
    (["render", "--model", "MODEL", "--prompt", "x", "--sampler", "bogus"], "unknown sampler"),
    (["render", "--model", "MODEL", "--prompt", "x", "--steps", "0"], "--steps"),
    (["render", "--model", "MODEL", "--prompt", "x", "--cfg", "nan"], "--cfg"),
    (["render", "--model", "MODEL", "--prompt", "x", "--width", "20", "--height", "16"], "--width must be a multiple of 8"),
    (["render", "--model", "MODEL", "--prompt", "x", "--rng", "gpu"], "--rng"),
    (["render", "--model", "MODEL", "--prompt", "(x:1.2.3)"], "weight"),
    (["render", "--model", "MODEL", "--prompt", "a fox"], "vocabulary"),
    (["render", "--model", "MODEL", "--prompt", "x", "--refiner", "MODEL", "--refiner-switch", "1.5"], "--refiner-switch must be in (0, 1)"),
    (["render", "--model", "MODEL", "--prompt", "x", "--refiner-switch", "0.5"], "farm: --refiner-switch needs a refiner"),
    (["render", "--model", "MODEL", "--prompt", "x", "--refiner", ""], "farm: --refiner must name a model"),
    (["render", "--model", "MODEL", "--prompt", "x", "--vae", "/no/such/vae"], "farm: --vae /no/such/vae: no such file or folder"),
    (["render", "--model", "MODEL", "--prompt", "x", "--refiner", "/no/such/refiner"], "no such file"),
    (["submit", "--prompt", "x", "--refiner-switch", "0"], "farm: --refiner-switch must be in (0, 1)"),
])
func renderRejectsBadInputWithOneLine(_ arguments: [String], _ expected: String) throws {
    let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models/tiny-sd1").path
    let result = try runFarm(arguments.map { $0 == "MODEL" ? model : $0 })
    #expect(result.status == 2)
    let lines = result.stderr.split(separator: "\n")
    #expect(lines.count == 1, "\(result.stderr)")
    #expect(result.stderr.contains(expected), "\(result.stderr)")
}

/// Writes `mask.png` into `folder`: 24×16 gray, white (repaint) over x 6..<18, y 4..<12, black elsewhere.
func writeMaskPNG(_ folder: URL) throws -> URL {
    var pixels = [UInt8](repeating: 0, count: 24 * 16)
    for y in 4..<12 { for x in 6..<18 { pixels[y * 24 + x] = 255 } }
    let url = folder.appendingPathComponent("mask.png")
    try PNGImage(width: 24, height: 16, format: .gray, pixels: pixels).pngData().write(to: url)
    return url
}

/// A random RGB PNG written to `folder`.
func writeRandomPNG(_ folder: URL, name: String, width: Int, height: Int, seed: UInt32, gray: Bool = false) throws -> (URL, PNGImage) {
    var state = seed
    let channels = gray ? 1 : 3
    let pixels = (0..<(width * height * channels)).map { _ -> UInt8 in
        state = state &* 1_664_525 &+ 1_013_904_223
        return UInt8(truncatingIfNeeded: state >> 24)
    }
    let image = try PNGImage(width: width, height: height, format: gray ? .gray : .rgb, pixels: pixels)
    let url = folder.appendingPathComponent(name)
    try image.pngData().write(to: url)
    return (url, image)
}

@Test func renderImg2ImgInpaintAndControlNet() throws {
    let model = try tinyModelWithFullVocabulary()
    defer { try? FileManager.default.removeItem(at: model) }
    let (initURL, _) = try writeRandomPNG(model, name: "init.png", width: 24, height: 16, seed: 1)
    let maskURL = try writeMaskPNG(model)
    let (controlURL, _) = try writeRandomPNG(model, name: "control.png", width: 24, height: 16, seed: 2)
    let controlnet = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models/tiny-controlnet").path
    let common = ["render", "--model", model.path, "--prompt", "a fox", "--steps", "4", "--seed", "3"]
    let runs: [(String, [String], String)] = [
        ("img2img", ["--init-image", initURL.path, "--strength", "0.5"], "Denoising strength: 0.5"),
        ("philox", ["--width", "24", "--height", "16", "--rng", "philox"], "RNG: NV"),
        ("inpaint", ["--init-image", initURL.path, "--mask", maskURL.path, "--mask-blur", "0"], "Mask blur: 0"),
        (
            "control",
            [
                "--width", "24", "--height", "16", "--controlnet", controlnet, "--control-image", controlURL.path,
                "--control-scale", "0.7",
            ], "Size: 24x16"
        ),
    ]
    for (name, extra, expected) in runs {
        let out = model.appendingPathComponent("\(name).png").path
        let result = try runFarm(common + extra + ["--out", out])
        #expect(result.status == 0, "\(name): \(result.stderr)")
        let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
        #expect(image.width == 24 && image.height == 16, "\(name)")
        #expect(image.textValue("parameters")?.contains(expected) == true, "\(name): \(image.textValue("parameters") ?? "")")
    }
    // With a mask blur the original is pasted back outside the blurred mask.
    let blurredOut = model.appendingPathComponent("inpaint-blur.png").path
    #expect(try runFarm(common + ["--init-image", initURL.path, "--mask", maskURL.path, "--mask-blur", "1", "--out", blurredOut]).status == 0)
    let original = try PNGImage(pngData: Data(contentsOf: initURL))
    let pasted = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: blurredOut)))
    // Farther from the mask than the blur reaches (3σ = 3 px) the original comes back exactly.
    #expect(pasted.pixels[0..<3] == original.pixels[0..<3])
    #expect(pasted.pixels[(15 * 24 + 23) * 3..<(15 * 24 + 23) * 3 + 3] == original.pixels[(15 * 24 + 23) * 3..<(15 * 24 + 23) * 3 + 3])
}

@Test func outpaintKeepsTheOriginalAndBlendsTheSeam() throws {
    let model = try tinyModelWithFullVocabulary()
    defer { try? FileManager.default.removeItem(at: model) }
    let (initURL, original) = try writeRandomPNG(model, name: "init.png", width: 24, height: 16, seed: 5)
    let out = model.appendingPathComponent("wide.png").path
    let result = try runFarm([
        "render", "--model", model.path, "--prompt", "a fox", "--steps", "4", "--init-image", initURL.path,
        "--outpaint", "8,0,0,8", "--out", out,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
    #expect(image.width == 32 && image.height == 24)
    // The original sits at x 8..<32, y 0..<16. Pixels more than 8 px (the overlap band) from
    // the new area are the original's, byte for byte.
    var kept = 0
    for y in 0..<8 {
        for x in 16..<32 {
            let a = (y * 32 + x) * 3
            let b = (y * 24 + x - 8) * 3
            #expect(image.pixels[a..<a + 3] == original.pixels[b..<b + 3], "pixel \(x),\(y) changed")
            kept += 1
        }
    }
    #expect(kept == 128)
    // Inside the band the result moves away from the original gradually.
    func difference(x: Int, y: Int) -> Int {
        let a = (y * 32 + x) * 3
        let b = (y * 24 + x - 8) * 3
        return (0..<3).map { abs(Int(image.pixels[a + $0]) - Int(original.pixels[b + $0])) }.reduce(0, +)
    }
    let band = (0..<8).map { y in difference(x: 9, y: y) }.reduce(0, +)
    let inner = (0..<8).map { y in difference(x: 15, y: y) }.reduce(0, +)
    #expect(band > inner, "the seam side (x=9) must differ more from the original than the inner side (x=15)")
}

/// `farm submit` passes --refiner, --refiner-switch and --vae to a spec as it does the other flags (the dry run shows them).
@Test func submitPassesTheRefinerAndVAEFlagsToASpec() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("submit-\(UUID().uuidString.prefix(6))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let spec = folder.appendingPathComponent("xl.txt")
    try "a fox\na hen\n".write(to: spec, atomically: true, encoding: .utf8)
    let result = try runFarmCapturing([
        "submit", spec.path, "--dry-run", "--model", "sdxl", "--refiner", "sdxl-refiner", "--refiner-switch", "0.7", "--vae", "sdxl-vae",
    ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
        result.stdout.contains("a fox\" seed 0, nativexnative, 20 steps, cfg 7.5, euler_a, sdxl, refiner sdxl-refiner at 0.7, VAE sdxl-vae"),
        "\(result.stdout)")
    let bad = try runFarmCapturing(["submit", spec.path, "--dry-run", "--model", "sdxl", "--refiner-switch", "0.7"])
    #expect(bad.status == 2 && bad.stderr.contains("refiner_switch: needs a refiner"), "\(bad.stderr)")
}
