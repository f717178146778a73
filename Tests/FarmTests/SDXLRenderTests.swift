import Foundation
import Imaging
import StableDiffusion
import Testing

/// `farm render` on the tiny SDXL (both text encoders with CLIP's real vocabulary): text-to-image, img2img and
/// outpainting write PNGs of the asked size with the web UI's parameters, and the same seed gives the same bytes.
@Test func renderDrawsWithSDXLInEveryMode() throws {
    let model = try tinyModelWithFullVocabulary("tiny-sdxl")
    defer { try? FileManager.default.removeItem(at: model) }
    let common = ["render", "--model", model.path, "--prompt", "a (red:1.2) fox in snow", "--steps", "3", "--sampler", "dpmpp_2m"]
    let first = model.appendingPathComponent("a.png").path
    let again = model.appendingPathComponent("b.png").path
    for out in [first, again] {
        let result = try runFarm(common + ["--width", "48", "--height", "32", "--seed", "5", "--out", out])
        #expect(result.status == 0, "\(result.stderr)")
    }
    let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: first)))
    #expect(image.width == 48 && image.height == 32)
    #expect(try Data(contentsOf: URL(fileURLWithPath: first)) == Data(contentsOf: URL(fileURLWithPath: again)))
    #expect(image.text.first { $0.key == "parameters" }?.value.contains("Seed: 5") == true)
    let (initURL, _) = try writeRandomPNG(model, name: "init.png", width: 48, height: 32, seed: 3)
    let img2img = model.appendingPathComponent("img2img.png").path
    #expect(try runFarm(common + ["--init-image", initURL.path, "--strength", "0.6", "--out", img2img]).status == 0)
    #expect(try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: img2img))).width == 48)
    let outpaint = model.appendingPathComponent("outpaint.png").path
    let result = try runFarm(common + ["--init-image", initURL.path, "--outpaint", "16,0,0,16", "--out", outpaint])
    #expect(result.status == 0, "\(result.stderr)")
    let extended = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: outpaint)))
    #expect(extended.width == 64 && extended.height == 48)
}
