import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import Testing

private let upscalerFixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("StableDiffusionTests/Fixtures/models/upscalers/compact-x4.pth")

/// Hires fix through a pixel upscaler model (ESRGAN-class): `farm render --hires-upscaler FILE` decodes the first pass,
/// upscales its pixels with the model and img2imgs the result; a worker finds the same file by name in its models folder
/// and draws the same picture; the picture differs from the latent upscale's; an unknown name is one line.
@Test func hiresFixThroughAnUpscalerModel() throws {
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    try FileManager.default.copyItem(at: upscalerFixture, to: models.appendingPathComponent("compact-x4.pth"))
    let common = [
        "render", "--model", models.appendingPathComponent("tiny").path, "--prompt", "a fox", "--steps", "3", "--sampler", "euler", "--seed", "3",
        "--width", "24", "--height", "16", "--hires-scale", "2", "--hires-steps", "4",
    ]
    func render(_ name: String, _ extra: [String]) throws -> PNGImage {
        let out = models.appendingPathComponent("\(name).png").path
        let result = try runFarm(common + extra + ["--out", out])
        #expect(result.status == 0, "\(name): \(result.stderr)")
        return try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
    }
    let pixel = try render("pixel", ["--hires-upscaler", models.appendingPathComponent("compact-x4.pth").path])
    #expect(pixel.width == 48 && pixel.height == 32)
    #expect(try render("pixel-again", ["--hires-upscaler", models.appendingPathComponent("compact-x4.pth").path]).pixels == pixel.pixels)
    let latent = try render("latent", [])
    #expect(latent.pixels != pixel.pixels, "the upscaler model changed nothing")
    let unknown = try runFarm(common + ["--hires-upscaler", "no-such-upscaler", "--out", models.appendingPathComponent("x.png").path])
    #expect(
        unknown.status == 2 && unknown.stderr.contains("neither a latent mode") && unknown.stderr.split(separator: "\n").count == 1,
        "\(unknown.stderr)")

    // On the farm: the worker loads `compact-x4` from its models folder by name.
    let (conninfo, endpoint) = try farmDatabase()
    let coordinator = try startCoordinator(conninfo, endpoint)
    let worker = try FarmProcess(["worker", "--insecure", "--coordinator", endpoint, "--name", "hires", "--models", models.path], name: "hires")
    let store = JobStore(connection: try Connection(conninfo))
    var task = TaskParameters(prompt: "a fox", model: "tiny", width: 24, height: 16, steps: 3, sampler: "euler", seed: 3)
    (task.hiresScale, task.hiresSteps, task.hiresUpscaler) = (2, 4, "compact-x4")
    var missing = task
    missing.hiresUpscaler = "no-such-upscaler"
    // The upscale step after a plain render: the finished image enlarged by the model, as `farm upscale` does it.
    var enlarged = TaskParameters(prompt: "a fox", model: "tiny", width: 24, height: 16, steps: 3, sampler: "euler", seed: 3)
    (enlarged.upscaler, enlarged.upscaleBy) = ("compact-x4", 2)
    let job = try store.enqueue(name: "hires", model: "tiny", maxAttempts: 1, tasks: [task, missing, enlarged])
    #expect(try waitFor(120) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n\(worker.output)")
    #expect(try store.progress(job: job).counts == [.done: 2, .failed: 1])
    let images = try store.images(job: job)
    let farmed = try PNGImage(pngData: try #require(images.first { $0.index == 0 }).png)
    #expect(farmed.pixels == pixel.pixels, "the worker's picture differs from farm render's")
    #expect(farmed.textValue("parameters")?.contains("Hires upscaler: compact-x4") == true)

    let base = models.appendingPathComponent("base.png")
    #expect(try runFarm(Array(common.dropLast(4)) + ["--out", base.path]).status == 0)
    let upscaledFolder = models.appendingPathComponent("upscaled")
    let upscale = try runFarm(["upscale", base.path, "--model", upscalerFixture.path, "--scale", "2", "--out", upscaledFolder.path])
    #expect(upscale.status == 0, "\(upscale.stderr)")
    let local = try PNGImage(pngData: Data(contentsOf: upscaledFolder.appendingPathComponent("base.png")))
    let step = try PNGImage(pngData: try #require(images.first { $0.index == 2 }).png)
    #expect(step.width == 48 && step.height == 32 && step.pixels == local.pixels, "the upscale step differs from farm upscale's")
    #expect(step.textValue("parameters")?.hasSuffix("Postprocess upscale by: 2, Postprocess upscaler: compact-x4") == true)
    _ = (coordinator, worker)
}
