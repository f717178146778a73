import FarmModel
import Foundation
import Generation
import Imaging
import JobStore
import Postgres
import Testing
import Worker

/// `farm render`, `farm submit` and the worker build their requests through the one `GenerationRequest`: the
/// same generation flags give the same task, the same `parameters` text and the same pixels.
@Test func renderSubmitAndTheWorkerGiveTheSameImage() throws {
    let (conninfo, _) = try farmDatabase()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("one-request-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let (source, _) = try writeRandomPNG(folder, name: "source.png", width: 64, height: 64, seed: 5)
    let (mask, _) = try writeRandomPNG(folder, name: "mask.png", width: 64, height: 64, seed: 6, gray: true)
    let cases: [[String]] = [
        // txt2img with every field the text carries, and a sampler named in capitals.
        [
            "--prompt", "a (blue:1.2) square, BREAK sky", "--negative", "blurry", "--width", "64", "--height", "32", "--steps", "3",
            "--cfg", "5", "--sampler", "DPMPP_2M_Karras", "--seed", "42", "--clip-skip", "2",
        ],
        // Inpainting at the init image's size, with the defaults for cfg and sampler.
        [
            "--prompt", "a red circle", "--steps", "4", "--seed", "3", "--init-image", source.path, "--mask", mask.path,
            "--strength", "0.5", "--mask-blur", "2",
        ],
    ]
    let store = JobStore(connection: try Connection(conninfo))
    _ = try store.registerWorker(WireMessage.Hello(workerID: "same", host: "test", models: ["demo"], slots: 1))
    let renderer = try DiffusionRenderer(modelsFolder: nil)
    for (number, flags) in cases.enumerated() {
        let out = folder.appendingPathComponent("render-\(number).png").path
        let rendered = try runFarm(["render", "--model", "demo"] + flags + ["--out", out])
        #expect(rendered.status == 0, "\(rendered.stderr)")
        let local = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))

        let submitted = try runFarmCapturing(["submit", "--model", "demo", "--name", "same-\(number)"] + flags + ["--database", conninfo])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let claimed = try store.claim(workerID: "same", capabilities: WorkerCapabilities(models: ["demo"]), limit: 5, leaseSeconds: 60)
        #expect(claimed.count == 1)
        guard let task = claimed.first?.parameters else { continue }
        let inputs = try task.inputHashes.reduce(into: [String: Data]()) { $0[$1] = try store.blob($1) }
        let farmImage = try renderer.render(task, inputs: inputs, previewEvery: 0, preview: { _, _ in }, progress: { _, _ in true })

        // The request the farm renders is the one the flags give, its inputs stored by hash.
        let request = GenerationRequest(task)
        #expect(request.prompt == flags[1] && request.model == "demo" && request.seed == UInt64(flags[flags.firstIndex(of: "--seed")! + 1]))
        #expect(TaskParameters(request) == task)
        #expect(local.width == farmImage.width && local.height == farmImage.height)
        #expect(local.textValue("parameters") != nil && local.textValue("parameters") == farmImage.textValue("parameters"))
        #expect(local.textValue("parameters") == request.parametersText(width: local.width, height: local.height))
        #expect(local.pixels == farmImage.pixels, "case \(number): farm render and the worker drew different pixels")
    }
}
