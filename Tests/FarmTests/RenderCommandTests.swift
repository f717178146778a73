import Foundation
import Imaging
import StableDiffusion
import Tensors
import Testing

/// The `farm` binary next to the test bundle (swift build builds both).
let farmBinary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("farm")

/// Runs `farm` and returns its exit status and standard error.
func runFarm(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = farmBinary
    process.arguments = arguments
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    let data = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The tiny SD 1.x fixture with a text encoder that takes CLIP's real 49408-token vocabulary.
func tinyModelWithFullVocabulary() throws -> URL {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models/tiny-sd1")
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("render-model-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: source, to: folder)
    let encoder = folder.appendingPathComponent("text_encoder")
    var weights = try SafeTensorsFile(url: encoder.appendingPathComponent("model.safetensors")).allTensors()
    var state: UInt32 = 99
    let width = weights["text_model.embeddings.token_embedding.weight"]!.shape[1]
    weights["text_model.embeddings.token_embedding.weight"] = Tensor(shape: [49408, width], values: (0..<(49408 * width)).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return (Float(state >> 8) / Float(1 << 24) - 0.5) * 0.4
    })
    try SafeTensorsFile.write(weights, to: encoder.appendingPathComponent("model.safetensors"))
    let configURL = encoder.appendingPathComponent("config.json")
    var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
    config["vocab_size"] = 49408
    try JSONSerialization.data(withJSONObject: config).write(to: configURL)
    return folder
}

@Test func renderWritesPNGsWithParametersAndLatents() throws {
    let model = try tinyModelWithFullVocabulary()
    defer { try? FileManager.default.removeItem(at: model) }
    let out = model.appendingPathComponent("fox.png").path
    let latents = model.appendingPathComponent("fox.npy").path
    let arguments = ["render", "--model", model.path, "--prompt", "a (red:1.3) fox, BREAK snow", "--negative", "blurry",
                     "--width", "24", "--height", "16", "--steps", "3", "--sampler", "euler", "--seed", "7", "--batch", "2",
                     "--cfg", "5", "--out", out, "--save-latents", latents]
    let result = try runFarm(arguments)
    #expect(result.status == 0, "\(result.stderr)")
    for (index, seed) in [(1, 7), (2, 8)] {
        let path = out.replacingOccurrences(of: ".png", with: "-\(index).png")
        let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(image.width == 24 && image.height == 16 && image.format == .rgb)
        let parameters = try #require(image.textValue("parameters"))
        #expect(parameters.hasPrefix("a (red:1.3) fox, BREAK snow\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, CFG scale: 5.0, Seed: \(seed), Size: 24x16"))
    }
    let npy = try Data(contentsOf: URL(fileURLWithPath: latents))
    #expect(npy.prefix(6) == Data([0x93] + Array("NUMPY".utf8)))
    let header = String(decoding: npy.dropFirst(10).prefix(Int(npy[8]) | Int(npy[9]) << 8), as: UTF8.self)
    #expect(header.contains("'shape': (2, 4, 8, 12)"))
    #expect((npy.count - 10 - Int(npy[8])) == 2 * 4 * 8 * 12 * 4)

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
    (["render", "--model", "MODEL", "--prompt", "x", "--width", "20", "--height", "16"], "width must be a positive multiple of 8"),
    (["render", "--model", "MODEL", "--prompt", "x", "--rng", "philox"], "--rng"),
    (["render", "--model", "MODEL", "--prompt", "(x:1.2.3)"], "weight"),
    (["render", "--model", "MODEL", "--prompt", "a fox"], "vocabulary"),
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
