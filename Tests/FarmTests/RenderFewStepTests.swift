import Foundation
import Imaging
import Testing

/// `farm render --tome/--deepcache/--deepcache-branch`: the shortcuts reach the pipeline (the picture changes, and
/// twice the same flags give the same bytes) and the PNG text names them as the web UI would.
@Test func renderTakesTheFewStepFlags() throws {
    let model = try tinyModelWithFullVocabulary()
    defer { try? FileManager.default.removeItem(at: model) }
    func render(_ name: String, _ extra: [String]) throws -> (pixels: Data, parameters: String) {
        let out = model.appendingPathComponent(name).path
        let result = try runFarm(
            [
                "render", "--model", model.path, "--prompt", "a fox", "--width", "24", "--height", "16", "--steps", "6", "--sampler", "euler",
                "--out", out,
            ]
                + extra)
        #expect(result.status == 0, "\(result.stderr)")
        let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
        return (Data(image.pixels), try #require(image.textValue("parameters")))
    }
    let full = try render("full.png", [])
    let flags = ["--tome", "0.5", "--deepcache", "3", "--deepcache-branch", "1"]
    let fast = try render("fast.png", flags)
    #expect(fast.parameters.hasSuffix(", Token merging ratio: 0.5, DeepCache interval: 3, DeepCache branch: 1"))
    #expect(!full.parameters.contains("Token merging") && !full.parameters.contains("DeepCache"))
    #expect(fast.pixels != full.pixels)
    #expect(try render("again.png", flags).pixels == fast.pixels)
    #expect(try render("off.png", ["--tome", "0", "--deepcache", "1"]).pixels == full.pixels)
}

@Test(arguments: [
    (["--tome", "0.9"], "farm: --tome must be 0...0.75"),
    (["--deepcache", "0"], "farm: --deepcache must be 1...500"),
    (["--deepcache-branch", "2"], "farm: --deepcache-branch needs a DeepCache interval of 2 or more"),
    (["--deepcache", "3", "--deepcache-branch", "9"], "DeepCache branch must be 0...8 for this UNet"),
])
func renderRefusesBadFewStepFlagsInOneLine(_ flags: [String], _ expected: String) throws {
    let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models/tiny-sd1").path
    let result = try runFarm(["render", "--model", model, "--prompt", "x", "--width", "24", "--height", "16"] + flags)
    #expect(result.status == 2)
    #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    #expect(result.stderr.contains(expected), "\(result.stderr)")
}
