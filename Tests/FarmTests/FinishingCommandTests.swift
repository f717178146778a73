import Foundation
import Imaging
import StableDiffusion
import Tensors
import Testing

/// The fixture models of the engine's tests.
private let engineFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("StableDiffusionTests/Fixtures/models")

/// The float32 values of a `.npy` file `farm render --save-latents` wrote, with its shape.
private func readNumPy(_ url: URL, shape: [Int]) throws -> Tensor {
    let data = try Data(contentsOf: url)
    let headerLength = Int(data[8]) | Int(data[9]) << 8
    let values = data.dropFirst(10 + headerLength).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    return Tensor(shape: shape, values: values)
}

@Test func upscaleWritesTheModelsEnlargement() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("upscale-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let (input, image) = try writeRandomPNG(folder, name: "small.png", width: 30, height: 21, seed: 4)
    let model = engineFixtures.appendingPathComponent("upscalers/rrdb-x2.pth")
    let out = folder.appendingPathComponent("out")
    let result = try runFarm(["upscale", input.path, "--model", model.path, "--tile", "16", "--overlap", "4", "--out", out.path])
    #expect(result.status == 0, "\(result.stderr)")
    let written = try PNGImage(pngData: Data(contentsOf: out.appendingPathComponent("small.png")))
    #expect(written.width == 60 && written.height == 42 && written.format == .rgb)
    // The same tiles in process, through the same byte conversions.
    let pixels = Pipeline.pixels(rgb: image.pixels, width: 30, height: 21).map { ($0 + 1) / 2 }
    let expected = try Upscaler.load(model).upscale(pixels, by: 2, tile: 16, overlap: 4)
    #expect(written.pixels == Pipeline.bytes(expected.map { $0 * 2 - 1 })[0])
}

@Test(arguments: [
    (["upscale", "IMAGE", "--model", "/no/such/model.pth", "--out", "OUT"], "farm: --model /no/such/model.pth: no such file"),
    (["upscale", "IMAGE", "--model", "TAESD", "--out", "OUT"], "not an ESRGAN, Real-ESRGAN or SRVGGNetCompact model"),
    (["upscale", "IMAGE", "--model", "UPSCALER", "--scale", "0", "--out", "OUT"], "--scale must be in (0, 16]"),
    (["upscale", "IMAGE", "--model", "UPSCALER", "--overlap", "200", "--out", "OUT"], "--overlap must be"),
    (["upscale", "/no/such.png", "--model", "UPSCALER", "--out", "OUT"], "/no/such.png: no such image file"),
    (["render", "--model", "MODEL", "--prompt", "x", "--vae", "taesd"], "--vae taesd: no taesd folder"),
    (["render", "--model", "MODEL", "--prompt", "x", "--vae", "TAESD4X"], "this TAESD decodes 4 latent channels at 4x, the model needs 4 at 2x"),
])
func finishingCommandsRejectBadInputWithOneLine(_ arguments: [String], _ expected: String) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("upscale-bad-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let (input, _) = try writeRandomPNG(folder, name: "a.png", width: 8, height: 8, seed: 1)
    let places = [
        "IMAGE": input.path, "OUT": folder.appendingPathComponent("out").path,
        "UPSCALER": engineFixtures.appendingPathComponent("upscalers/compact-x4.pth").path,
        "TAESD": engineFixtures.appendingPathComponent("tiny-taesd/diffusion_pytorch_model.safetensors").path,
        "TAESD4X": engineFixtures.appendingPathComponent("tiny-taesd").path,
        "MODEL": engineFixtures.appendingPathComponent("tiny-sd1").path,
    ]
    let result = try runFarm(arguments.map { places[$0] ?? $0 })
    #expect(result.status == 2)
    #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    #expect(result.stderr.contains(expected), "\(result.stderr)")
}

/// `--vae taesd` finds a `taesd` folder beside the model and decodes the sampled latents with it.
@Test func renderDecodesWithTAESDBesideTheModel() throws {
    let model = try tinyModelWithFullVocabulary()
    let parent = FileManager.default.temporaryDirectory.appendingPathComponent("taesd-render-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: parent) }
    let placed = parent.appendingPathComponent("model")
    try FileManager.default.moveItem(at: model, to: placed)
    try FileManager.default.copyItem(at: engineFixtures.appendingPathComponent("tiny-taesd-2x"), to: parent.appendingPathComponent("taesd"))
    func render(_ name: String, _ extra: [String]) throws -> PNGImage {
        let out = parent.appendingPathComponent("\(name).png")
        let arguments = [
            "render", "--model", placed.path, "--prompt", "a fox", "--width", "24", "--height", "16", "--steps", "2",
            "--sampler", "euler", "--seed", "3", "--out", out.path, "--save-latents", parent.appendingPathComponent("\(name).npy").path,
        ]
        let result = try runFarm(arguments + extra)
        #expect(result.status == 0, "\(result.stderr)")
        return try PNGImage(pngData: Data(contentsOf: out))
    }
    let full = try render("vae", [])
    let fast = try render("taesd", ["--vae", "taesd"])
    #expect(fast.width == 24 && fast.height == 16)
    #expect(fast.pixels != full.pixels)
    let latents = try readNumPy(parent.appendingPathComponent("taesd.npy"), shape: [1, 4, 8, 12])
    let taesd = try TinyAutoencoder.load(parent.appendingPathComponent("taesd"))
    let expected = Pipeline.bytes(taesd.decode(latents))[0]
    let largest = zip(fast.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? 255
    #expect(largest <= 1, "TAESD render differs from TAESD's decode of its latents by \(largest)/255")
}
