import Foundation
import Imaging
import Testing

/// `farm render` with variation seeds, resize modes and hires fix, on the tiny model with CLIP's vocabulary.
@Test func renderFinishesPictures() throws {
    let model = try tinyModelWithFullVocabulary()
    defer { try? FileManager.default.removeItem(at: model) }
    let common = ["render", "--model", model.path, "--prompt", "a fox", "--steps", "3", "--sampler", "euler", "--seed", "3"]
    func render(_ name: String, _ extra: [String]) throws -> PNGImage {
        let out = model.appendingPathComponent("\(name).png").path
        let result = try runFarm(common + extra + ["--out", out])
        #expect(result.status == 0, "\(name): \(result.stderr)")
        return try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
    }

    // Hires fix: the image is the second pass's size; the text keeps the first pass's, as the web UI writes it.
    let hires = try render("hires", ["--width", "24", "--height", "16", "--hires-scale", "2", "--hires-steps", "4"])
    #expect(hires.width == 48 && hires.height == 32)
    let text = try #require(hires.textValue("parameters"))
    #expect(text.contains("Size: 24x16"), "\(text)")
    #expect(text.hasSuffix("Denoising strength: 0.7, Hires upscale: 2.0, Hires steps: 4, Hires upscaler: Latent"), "\(text)")
    let cropped = try render("hires-crop", ["--width", "24", "--height", "16", "--hires-width", "40", "--hires-height", "24"])
    #expect(cropped.width == 40 && cropped.height == 24)

    // An init image of another size is fitted by each resize mode; the modes give different pictures.
    let (initURL, _) = try writeRandomPNG(model, name: "init.png", width: 20, height: 12, seed: 4)
    var pictures: [[UInt8]] = []
    for mode in ["0", "crop_and_resize", "resize_and_fill", "latent_upscale"] {
        let image = try render("mode-\(mode)", ["--init-image", initURL.path, "--width", "24", "--height", "16", "--resize-mode", mode])
        #expect(image.width == 24 && image.height == 16, "mode \(mode)")
        pictures.append(image.pixels)
    }
    #expect(Set(pictures).count == 4)

    // Variation seeds: strength 0 is the base seed's picture; a blend writes each image's variation seed.
    let base = try render("base", ["--width", "24", "--height", "16"])
    #expect(try render("zero", ["--width", "24", "--height", "16", "--subseed", "9", "--subseed-strength", "0"]).pixels == base.pixels)
    let out = model.appendingPathComponent("varied.png").path
    #expect(
        try runFarm(common + ["--width", "24", "--height", "16", "--subseed", "9", "--subseed-strength", "0.4", "--batch", "2", "--out", out]).status
            == 0)
    for (index, subseed) in [(1, 9), (2, 10)] {
        let image = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out.replacingOccurrences(of: ".png", with: "-\(index).png"))))
        #expect(image.textValue("parameters")?.contains("Variation seed: \(subseed), Variation seed strength: 0.4") == true)
    }
}

@Test(arguments: [
    (["--hires-scale", "2", "--init-image", "INIT"], "--hires-scale hires fix follows text-to-image"),
    (["--init-image", "INIT", "--mask", "INIT", "--resize-mode", "3", "--width", "24", "--height", "16"], "latent_upscale resizes latents"),
    (["--resize-mode", "sideways", "--init-image", "INIT"], "--resize-mode must be 0...3"),
    (["--resize-mode", "1"], "--resize-mode needs an init image"),
    (["--seed-resize-from", "64"], "--seed-resize-from must be W,H"),
    (["--subseed-strength", "0.5"], "--subseed-strength needs a variation seed"),
    (
        ["--hires-scale", "2", "--hires-upscaler", "4x-UltraSharp"],
        "--hires-upscaler 4x-UltraSharp: neither a latent mode (nearest, nearest-exact, bilinear, bicubic, bilinear-antialiased, bicubic-antialiased) nor an upscaler file"
    ),
])
func renderRefusesBadFinishingFlagsInOneLine(_ extra: [String], _ expected: String) throws {
    let model = try tinyModelWithFullVocabulary()
    defer { try? FileManager.default.removeItem(at: model) }
    let (initURL, _) = try writeRandomPNG(model, name: "init.png", width: 20, height: 12, seed: 4)
    let arguments = ["render", "--model", model.path, "--prompt", "a fox", "--steps", "2", "--out", model.appendingPathComponent("x.png").path]
    let result = try runFarm(arguments + extra.map { $0 == "INIT" ? initURL.path : $0 })
    #expect(result.status == 2, "\(result.stderr)")
    #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    #expect(result.stderr.contains(expected), "\(result.stderr)")
}
