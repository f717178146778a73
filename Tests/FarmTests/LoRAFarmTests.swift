import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import StableDiffusion
import Testing
import Worker

/// Two worker processes, one with `--lora-dir`/`--embeddings-dir` and one without: a task naming a LoRA in `loras`
/// waits (never leased) while only the worker without LoRAs runs, then goes to the one that has it; its image (and
/// one whose prompt carries the tag, routed the same way) equals `farm render`'s with the same folders, pixels and
/// `parameters` text, hashes included; a tag no worker has stays queued, never leased, as a model no worker has.
@Test func farmRendersLoRATasksOnWorkersThatHaveThemLikeFarmRender() throws {
    let models = try modelsFolderWithTinyModel()
    let folders = try addOnFolders()
    defer {
        try? FileManager.default.removeItem(at: models)
        try? FileManager.default.removeItem(at: folders.loras.deletingLastPathComponent())
    }
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let plain = try FarmProcess(["worker", "--insecure", "--coordinator", endpoint, "--name", "plain", "--models", models.path], name: "plain")

    var byField = TaskParameters(
        prompt: "a photo of (tiny-emb:1.2), snow", negativePrompt: "tiny-neg, blurry", model: "tiny", width: 24, height: 16, steps: 3,
        cfgScale: 5, sampler: "euler", seed: 3)
    byField.loras = [TaskParameters.LoRA(name: "style", weight: 0.8)]
    let noLoRA = TaskParameters(prompt: "a cat", model: "tiny", width: 24, height: 16, steps: 2, cfgScale: 5, sampler: "euler", seed: 1)
    let job = try store.enqueue(name: "loras", model: "tiny", tasks: [byField, noLoRA])
    #expect(try waitFor(120) { try store.progress(job: job).counts[.done] == 1 }, "\(coordinator.output)\n\(plain.output)")
    let waiting = try store.testConnection.query("SELECT state, attempt FROM tasks WHERE job_id = $1 AND index = 0", [job]).single()
    #expect(try waiting.decode("state", as: String.self) == "queued" && waiting.decode("attempt", as: Int.self) == 0)

    let withLoRAs = try FarmProcess(
        [
            "worker", "--insecure", "--coordinator", endpoint, "--name", "loras", "--models", models.path, "--lora-dir", folders.loras.path,
            "--embeddings-dir", folders.embeddings.path,
        ], name: "loras")
    var byTag = byField
    byTag.loras = nil
    byTag.prompt = "a <lora:style:0.8> photo of (tiny-emb:1.2), snow"
    var unknown = noLoRA
    unknown.prompt = "a <lora:nope:1> cat"
    let second = try store.enqueue(name: "tags", model: "tiny", tasks: [byTag, unknown])
    #expect(
        try waitFor(180) { try store.progress(job: job).isFinished && store.progress(job: second).counts[.done] == 1 },
        "\(coordinator.output)\n\(plain.output)\n\(withLoRAs.output)")
    #expect(try renderingWorkers(store, job: job) == [0: "loras", 1: "plain"])
    #expect(try renderingWorkers(store, job: second) == [0: "loras"])
    let unknownTask = try store.testConnection.query("SELECT state, attempt FROM tasks WHERE job_id = $1 AND index = 1", [second]).single()
    #expect(try unknownTask.decode("state", as: String.self) == "queued" && unknownTask.decode("attempt", as: Int.self) == 0)

    let farmed = try [(job, byField), (second, byTag)].map { id, task in
        (try PNGImage(pngData: try #require(try store.images(job: id).first { $0.index == 0 }).png), task)
    }
    for (image, task) in farmed {
        let out = models.appendingPathComponent("local.png").path
        let result = try runFarm(
            [
                "render", "--model", models.appendingPathComponent("tiny").path, "--prompt", task.prompt, "--negative", task.negativePrompt,
                "--width", "24", "--height", "16", "--steps", "3", "--cfg", "5", "--sampler", "euler", "--seed", "3", "--out", out,
                "--lora-dir", folders.loras.path, "--embeddings-dir", folders.embeddings.path,
            ] + (task.loras ?? []).flatMap { ["--lora", "\($0.name):\($0.weight)"] })
        #expect(result.status == 0, "\(result.stderr)")
        let local = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
        #expect(image.pixels == local.pixels, "the farm's image differs from farm render's: \(task.prompt)")
        #expect(image.textValue("parameters") == local.textValue("parameters"))
        #expect(image.textValue("parameters")?.contains("Lora hashes: \"style: ") == true)
        #expect(image.textValue("parameters")?.contains("TI hashes: \"tiny-emb: ") == true)
    }
    // A LoRA given in `loras` and the same LoRA as a tag draw the same picture.
    #expect(farmed[0].0.pixels == farmed[1].0.pixels)
    _ = (coordinator, plain, withLoRAs)
}

/// The worker's pipeline cache keys on (model, VAE, LoRAs with weights): a second task with the same LoRA builds no
/// pipeline, another weight builds one, and the LoRA changes the image.
@Test func workerPatchesOncePerLoRACombination() throws {
    let models = try modelsFolderWithTinyModel()
    let folders = try addOnFolders()
    defer {
        try? FileManager.default.removeItem(at: models)
        try? FileManager.default.removeItem(at: folders.loras.deletingLastPathComponent())
    }
    let renderer = try DiffusionRenderer(modelsFolder: models, addOns: AddOnFolders(loras: folders.loras, embeddings: folders.embeddings))
    #expect(renderer.loras == ["style"])
    func render(_ prompt: String) throws -> [UInt8] {
        let task = TaskParameters(prompt: prompt, model: "tiny", width: 24, height: 16, steps: 2, cfgScale: 5, sampler: "euler", seed: 2)
        return try renderer.render(task, inputs: [:], previewEvery: 0, preview: { _, _ in }, progress: { _, _ in true }).pixels
    }
    let first = try render("a <lora:style:0.8> cat")
    let second = try render("a <lora:style:0.8> dog")
    #expect(renderer.pipelinesBuilt == 1)
    _ = try render("a <lora:style:0.5> cat")
    #expect(renderer.pipelinesBuilt == 2)
    let plain = try render("a cat")
    #expect(renderer.pipelinesBuilt == 3 && plain != first && first != second)
    _ = try render("a <lora:style:0.8> cat")
    #expect(renderer.pipelinesBuilt == 3)
}
