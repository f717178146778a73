import Coordinator
import FarmModel
import Foundation
import Imaging
import JobStore
import Postgres
import TestSupport
import Testing
import Worker
import ZeroMQ

let migrationsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Migrations")

/// A coordinator and two workers on real sockets and a real database render a job to the end.
@Test func coordinatorAndWorkersRenderAJob() throws {
    let (conninfo, connection) = try migratedDatabase()
    let tasks = (0..<6).map { TaskParameters(prompt: "card \($0)", model: "test-pattern", width: 32, height: 24, steps: 3, seed: UInt64(100 + $0)) }
    let job = try JobStore(connection: connection).enqueue(name: "e2e", model: "test-pattern", tasks: tasks)
    // A model no worker has is never handed out: its job waits for a worker that has it.
    let waiting = try JobStore(connection: connection).enqueue(
        name: "waits", model: "sd-nonexistent",
        tasks: [TaskParameters(prompt: "x", model: "sd-nonexistent", width: 32, height: 32, steps: 1)])

    let context = ZMQContext()
    let coordinator = try makeCoordinator(conninfo, context: context)
    let endpoint = coordinator.endpoint
    let stop = ThreadSafeBox(false)
    let workersDone = ThreadSafeBox(0)
    for index in 0..<2 {
        var settings = WorkerConfiguration(coordinator: endpoint, workerID: "w\(index)")
        settings.slots = 2
        startWorkerThread(settings, context: context, stop: stop) { workersDone.mutate { $0 += 1 } }
    }
    let observer = JobStore(connection: try Connection(conninfo))
    let deadline = Date().addingTimeInterval(60)
    while try !observer.progress(job: job).isFinished && Date() < deadline {
        try coordinator.runOnce(timeout: 0.05)
    }
    stop.mutate { $0 = true }
    while workersDone.value < 2 { try coordinator.runOnce(timeout: 0.05) }

    #expect(try observer.progress(job: job).counts == [.done: 6])
    #expect(try observer.progress(job: waiting).counts == [.queued: 1])
    let images = try observer.images(job: job)
    #expect(images.map(\.index) == Array(0..<6))
    for image in images {
        let decoded = try PNGImage(pngData: image.png)
        #expect(decoded.width == 32 && decoded.height == 24)
        #expect(decoded.textValue("parameters")?.hasPrefix("card \(image.index)\nSteps: ") == true, "\(decoded.textValue("parameters") ?? "")")
        #expect(decoded.textValue("seed") == String(100 + image.index))
    }
    let workers = try connection.query("SELECT id FROM workers ORDER BY id").rows.map { try $0.decode("id", as: String.self) }
    #expect(workers == ["w0", "w1"])
}

/// A worker speaking another protocol version is refused with a message, and the coordinator keeps serving.
@Test func wrongProtocolVersionIsRefused() throws {
    let (conninfo, _) = try migratedDatabase()
    let context = ZMQContext()
    let coordinator = try makeCoordinator(conninfo, context: context)
    let dealer = try Socket(context, .dealer)
    try dealer.connect(coordinator.endpoint)
    try dealer.send([Data("garbage".utf8)])
    try dealer.send([Data("HELLO".utf8), Data("{\"broken\":".utf8)])
    try dealer.send(WireMessage.hello(.init(workerID: "old", host: "h", version: 99, models: [], slots: 1)).frames())
    var reply: [Data]?
    for _ in 0..<100 where reply == nil {
        try coordinator.runOnce(timeout: 0.02)
        reply = try dealer.receive(dontWait: true)
    }
    let message = try WireMessage(frames: try #require(reply))
    guard case .refused(let refusal) = message else {
        Issue.record("expected REFUSED, got \(message)")
        return
    }
    #expect(refusal.code == .protocolVersion && refusal.reason.contains("protocol version 99"))
}

/// A worker with the diffusion engine renders real tasks from a models folder.
@Test func workerRendersWithTheEngine() throws {
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    let renderer = try DiffusionRenderer(modelsFolder: models)
    // The folder's models, and the bundled demo model that every diffusion worker serves.
    #expect(renderer.models == ["demo", "tiny"])
    #expect(renderer.loadedModels.isEmpty)

    let (conninfo, connection) = try migratedDatabase()
    let tasks = (0..<2).map {
        TaskParameters(prompt: "a fox \($0)", model: "tiny", width: 24, height: 16, steps: 3, sampler: "euler", seed: UInt64($0))
    }
    let badPrompt = TaskParameters(prompt: "(x:1.2.3)", model: "tiny", width: 24, height: 16, steps: 3)
    let badSampler = TaskParameters(prompt: "x", model: "tiny", width: 24, height: 16, steps: 3, sampler: "bogus")
    let job = try JobStore(connection: connection).enqueue(name: "engine", model: "tiny", tasks: tasks + [badPrompt, badSampler])

    let context = ZMQContext()
    let coordinator = try makeCoordinator(conninfo, context: context)
    let endpoint = coordinator.endpoint
    let stop = ThreadSafeBox(false)
    let finished = ThreadSafeBox(false)
    var settings = WorkerConfiguration(coordinator: endpoint, workerID: "engine")
    settings.previewEvery = 1
    startWorkerThread(settings, context: context, stop: stop, renderer: { renderer }, finished: { finished.mutate { $0 = true } })
    let observer = JobStore(connection: try Connection(conninfo))
    let deadline = Date().addingTimeInterval(120)
    var previewSeen: PNGImage?
    while try !observer.progress(job: job).isFinished && Date() < deadline {
        try coordinator.runOnce(timeout: 0.05)
        if let latest = coordinator.lastPreview { previewSeen = try PNGImage(pngData: latest.png) }
    }
    stop.mutate { $0 = true }
    while !finished.value { try coordinator.runOnce(timeout: 0.05) }

    #expect(try observer.progress(job: job).counts == [.done: 2, .failed: 2])
    // Latent previews (every step here) arrive at the coordinator at latent resolution.
    #expect(previewSeen?.width == 12 && previewSeen?.height == 8)
    #expect(renderer.loadedModels == ["tiny"] && renderer.loadedModel == "tiny")
    for stored in try observer.images(job: job) {
        let image = try PNGImage(pngData: stored.png)
        #expect(image.width == 24 && image.height == 16)
        #expect(image.textValue("parameters")?.hasPrefix("a fox \(stored.index)\nSteps: 3, Sampler: Euler") == true)
    }
    let failures = try connection.query("SELECT error_kind, error_message FROM tasks WHERE job_id = $1 AND state = 'failed' ORDER BY index", [job])
        .rows
    #expect(try failures.map { try $0.decode("error_kind", as: String.self) } == ["input", "input"])
    #expect(try failures[0].decode("error_message", as: String.self).contains("prompt"))
    #expect(try failures[1].decode("error_message", as: String.self).contains("unknown sampler \"bogus\""))
}

/// img2img, inpainting, outpainting, ControlNet, hires fix, variation seeds, a resized init image and the few-step
/// shortcuts (token merging, DeepCache) through the farm
/// (input images stored once, sent to the worker as BLOBs) give the same pixels and text as `farm render`.
@Test func farmRunsEveryPipelineLikeFarmRender() throws {
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    let model = models.appendingPathComponent("tiny")
    let controlSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models/tiny-controlnet")
    try FileManager.default.copyItem(at: controlSource, to: models.appendingPathComponent("canny"))
    let (initURL, initImage) = try writeRandomPNG(models, name: "init.png", width: 24, height: 16, seed: 4)
    let maskURL = try writeMaskPNG(models)
    let (controlURL, controlImage) = try writeRandomPNG(models, name: "control.png", width: 24, height: 16, seed: 6)
    _ = initImage

    let (conninfo, connection) = try migratedDatabase()
    let store = JobStore(connection: connection)
    let initHash = try store.storeBlob(try Data(contentsOf: initURL))
    let maskHash = try store.storeBlob(try Data(contentsOf: maskURL))
    let controlHash = try store.storeBlob(try controlImage.pngData())
    func task(_ seed: UInt64, _ change: (inout TaskParameters) -> Void) -> TaskParameters {
        var parameters = TaskParameters(
            prompt: "a fox", model: "tiny", width: 24, height: 16, steps: 3, cfgScale: 5,
            sampler: "euler", seed: seed)
        change(&parameters)
        return parameters
    }
    let tasks = [
        task(1) {
            $0.initImage = initHash
            $0.strength = 0.6
        },
        task(2) {
            $0.initImage = initHash
            $0.mask = maskHash
            $0.maskBlur = 2
            $0.strength = 0.9
        },
        task(3) {
            $0.initImage = initHash
            $0.outpaint = [8, 0, 0, 8]
        },
        task(4) { $0.controlnets = [.init(model: "canny", image: controlHash, scale: 0.7)] },
        task(5) { ($0.hiresScale, $0.hiresSteps, $0.hiresUpscaler) = (2, 2, "bicubic-antialiased") },
        task(6) { ($0.subseed, $0.subseedStrength, $0.seedResizeFrom) = (11, 0.5, [16, 16]) },
        task(7) { ($0.initImage, $0.width, $0.height, $0.resizeMode) = (initHash, 32, 24, 2) },
        task(8) { ($0.width, $0.height, $0.tokenMergingRatio, $0.deepCacheInterval) = (32, 32, 0.5, 2) },
    ]
    let flags: [[String]] = [
        ["--init-image", initURL.path, "--strength", "0.6"],
        ["--init-image", initURL.path, "--mask", maskURL.path, "--mask-blur", "2", "--strength", "0.9"],
        ["--init-image", initURL.path, "--outpaint", "8,0,0,8"],
        ["--width", "24", "--height", "16", "--controlnet", controlSource.path, "--control-image", controlURL.path, "--control-scale", "0.7"],
        ["--width", "24", "--height", "16", "--hires-scale", "2", "--hires-steps", "2", "--hires-upscaler", "bicubic-antialiased"],
        ["--width", "24", "--height", "16", "--subseed", "11", "--subseed-strength", "0.5", "--seed-resize-from", "16,16"],
        ["--init-image", initURL.path, "--width", "32", "--height", "24", "--resize-mode", "2"],
        ["--width", "32", "--height", "32", "--tome", "0.5", "--deepcache", "2"],
    ]
    let job = try store.enqueue(name: "pipelines", model: "tiny", tasks: tasks)
    #expect(try connection.query("SELECT count(*) AS n FROM task_inputs").single().decode("n", as: Int.self) == 6)

    let context = ZMQContext()
    let coordinator = try makeCoordinator(conninfo, context: context)
    let endpoint = coordinator.endpoint
    let stop = ThreadSafeBox(false)
    let finished = ThreadSafeBox(false)
    startWorkerThread(
        WorkerConfiguration(coordinator: endpoint, workerID: "pipelines"), context: context, stop: stop,
        renderer: { try DiffusionRenderer(modelsFolder: models) }, finished: { finished.mutate { $0 = true } })
    let deadline = Date().addingTimeInterval(120)
    while try !store.progress(job: job).isFinished && Date() < deadline { try coordinator.runOnce(timeout: 0.05) }
    stop.mutate { $0 = true }
    while !finished.value { try coordinator.runOnce(timeout: 0.05) }
    // Every unfinished task with its state, attempt and last error, should one not be done.
    let errors = try connection.query(
        "SELECT index, state::text AS state, attempt, coalesce(error_message, '') AS error FROM tasks WHERE state <> 'done'"
    )
    .rows.map { "\(try $0.text("index") ?? "") \(try $0.text("state") ?? "") \(try $0.text("attempt") ?? ""): \(try $0.text("error") ?? "")" }
    #expect(try store.progress(job: job).counts == [.done: 8], "\(errors)")

    for image in try store.images(job: job) {
        let out = models.appendingPathComponent("local-\(image.index).png").path
        let result = try runFarm(
            [
                "render", "--model", model.path, "--prompt", "a fox", "--steps", "3", "--cfg", "5",
                "--sampler", "euler", "--seed", String(image.index + 1), "--out", out,
            ] + flags[image.index])
        #expect(result.status == 0, "\(result.stderr)")
        let local = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
        let farmed = try PNGImage(pngData: image.png)
        #expect(farmed.width == local.width && farmed.height == local.height)
        #expect(farmed.pixels == local.pixels, "task \(image.index) differs from farm render")
        #expect(farmed.textValue("parameters") == local.textValue("parameters"), "task \(image.index)")
    }
}

/// Tasks with an SDXL refiner (the worker finds both models in its folder and hands over after `refiner_switch`) or
/// another VAE (a diffusers folder or a `.safetensors` in the worker's folder) give the same pixels and `parameters`
/// text as `farm render --refiner`/`--vae`; a refiner the worker lacks is never handed to it, and one that is not an
/// SDXL model fails the task as bad input.
@Test func farmRendersWithARefinerOrAVAELikeFarmRender() throws {
    let models = FileManager.default.temporaryDirectory.appendingPathComponent("models-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: models) }
    let base = models.appendingPathComponent("xl")
    let refiner = models.appendingPathComponent("xl-refiner")
    try FileManager.default.moveItem(at: try tinyModelWithFullVocabulary("tiny-sdxl"), to: base)
    try FileManager.default.moveItem(at: try tinyModelWithFullVocabulary("tiny-sdxl-refiner"), to: refiner)
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models")
    let vaeFolder = models.appendingPathComponent("xl-vae")
    let vaeFile = models.appendingPathComponent("xl-vae-file.safetensors")
    try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tiny-sdxl-vae"), to: vaeFolder)
    try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tiny-sdxl-vae.safetensors"), to: vaeFile)

    let (conninfo, connection) = try migratedDatabase()
    let store = JobStore(connection: connection)
    let plain = TaskParameters(prompt: "a fox", model: "xl", width: 48, height: 32, steps: 4, cfgScale: 5, sampler: "euler", seed: 3)
    func with(_ change: (inout TaskParameters) -> Void) -> TaskParameters {
        var task = plain
        change(&task)
        return task
    }
    let tasks = [
        with { ($0.refiner, $0.refinerSwitch) = ("xl-refiner", 0.6) }, with { $0.vae = "xl-vae" }, with { $0.vae = "xl-vae-file" }, plain,
        with { $0.refiner = "absent-refiner" }, with { $0.refiner = "demo" },
    ]
    let flags = [
        ["--refiner", refiner.path, "--refiner-switch", "0.6"], ["--vae", vaeFolder.path], ["--vae", vaeFile.path], [],
    ]
    let job = try store.enqueue(name: "refiner-and-vae", model: "xl", tasks: tasks)

    let context = ZMQContext()
    let coordinator = try makeCoordinator(conninfo, context: context)
    let stop = ThreadSafeBox(false)
    let finished = ThreadSafeBox(false)
    let renderer = try DiffusionRenderer(modelsFolder: models)
    #expect(renderer.models == ["demo", "xl", "xl-refiner"] && renderer.vaes == ["xl-vae", "xl-vae-file"])
    startWorkerThread(
        WorkerConfiguration(coordinator: coordinator.endpoint, workerID: "xl"), context: context, stop: stop,
        renderer: { renderer }, finished: { finished.mutate { $0 = true } })
    // The task with the absent refiner stays queued: the job is settled once the others are.
    func settled() throws -> Bool {
        let counts = try store.progress(job: job).counts
        return counts[.done, default: 0] + counts[.failed, default: 0] == 5
    }
    let deadline = Date().addingTimeInterval(180)
    while try !settled() && Date() < deadline { try coordinator.runOnce(timeout: 0.05) }
    stop.mutate { $0 = true }
    while !finished.value { try coordinator.runOnce(timeout: 0.05) }
    let states = try connection.query("SELECT index, state, coalesce(error_message, '') AS error FROM tasks WHERE job_id = $1 ORDER BY index", [job])
        .rows.map { (try $0.decode("state", as: String.self), try $0.decode("error", as: String.self)) }
    #expect(states.map(\.0) == ["done", "done", "done", "done", "queued", "failed"], "\(states)")
    #expect(states[5].1.contains("SDXL"), "\(states[5].1)")
    // Each pairing of a model with a VAE is a pipeline of its own.
    #expect(Set(renderer.loadedModels) == ["xl", "xl-refiner", "demo"] && renderer.loadedModels.filter { $0 == "xl" }.count == 3)

    let images = try store.images(job: job)
    #expect(images.map(\.index) == [0, 1, 2, 3])
    var pixels: [[UInt8]] = []
    for image in images {
        let farmed = try PNGImage(pngData: image.png)
        let out = models.appendingPathComponent("local-\(image.index).png").path
        let result = try runFarm(
            [
                "render", "--model", base.path, "--prompt", "a fox", "--width", "48", "--height", "32", "--steps", "4", "--cfg", "5",
                "--sampler", "euler", "--seed", "3", "--out", out,
            ] + flags[image.index])
        #expect(result.status == 0, "\(result.stderr)")
        let local = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
        #expect(farmed.width == 48 && farmed.height == 32 && farmed.pixels == local.pixels, "task \(image.index) differs from farm render")
        #expect(farmed.textValue("parameters") == local.textValue("parameters"))
        pixels.append(farmed.pixels)
    }
    let texts = images.map { (try? PNGImage(pngData: $0.png))?.textValue("parameters") ?? "" }
    #expect(texts[0].hasSuffix("Model: xl, Refiner: xl-refiner, Refiner switch at: 0.6"))
    #expect(texts[1].hasSuffix("Model: xl, VAE: xl-vae") && texts[2].hasSuffix("Model: xl, VAE: xl-vae-file"))
    // The other VAE decodes differently from the model's own, in either form the same way.
    #expect(pixels[1] != pixels[3] && pixels[1] == pixels[2])
}
