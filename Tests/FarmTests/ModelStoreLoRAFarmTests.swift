import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import Testing

/// A worker with `--model-server`, an empty cache and no LoRA folder claims tasks naming a stored LoRA (in `loras` and
/// as a prompt tag: each task carries the LoRA's hash from the store), fetches the LoRA once into its cache, verified,
/// and draws what `farm render` draws with that LoRA file.
@Test func workerFetchesAStoredLoRAAndRendersLikeFarmRender() throws {
    let models = try modelsFolderWithTinyModel()
    let folders = try addOnFolders()
    let store = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
    let cache = FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString)")
    defer {
        for folder in [models, folders.loras.deletingLastPathComponent(), store, cache] { try? FileManager.default.removeItem(at: folder) }
    }
    let farm = try HTTPFarm(extra: ["--model-store", store.path])
    let jobs = JobStore(connection: try Connection(farm.conninfo))
    let lora = folders.loras.appendingPathComponent("styles/style.safetensors")
    let added = try runFarmCapturing(["models", "add", lora.path, "--kind", "lora", "--server", farm.server, "--token", farm.admin])
    #expect(added.status == 0 && added.stdout.contains("model style (lora"), "\(added.stdout)\(added.stderr)")
    let hash = try SHA256.hex(ofFile: lora)

    let worker = try FarmProcess(
        [
            "worker", "--insecure", "--coordinator", farm.endpoint, "--name", "fetcher", "--models", models.path,
            "--model-server", farm.server, "--model-token", farm.submit, "--model-cache", cache.path,
        ], name: "fetcher")
    var byField = TaskParameters(prompt: "a photo, snow", model: "tiny", width: 24, height: 16, steps: 3, cfgScale: 5, sampler: "euler", seed: 3)
    byField.loras = [TaskParameters.LoRA(name: "style", weight: 0.8)]
    var byTag = byField
    byTag.loras = nil
    byTag.prompt = "a <lora:style:0.8> photo, snow"
    let job = try jobs.enqueue(name: "stored-lora", model: "tiny", tasks: [byField, byTag])
    let carried = try jobs.testConnection.query(
        "SELECT parameters->'stored_add_ons'->'loras'->>'style' AS h FROM tasks WHERE job_id = $1 ORDER BY index", [job]
    ).rows.map { try $0.decode("h", as: String.self) }
    #expect(carried == [hash, hash], "both tasks carry the stored LoRA's hash")
    #expect(try waitFor(180) { try jobs.progress(job: job).counts[.done] == 2 }, "\(farm.coordinator.output)\n\(worker.output)")

    #expect(try SHA256.hex(ofFile: cache.appendingPathComponent("\(hash).safetensors")) == hash, "the cached LoRA is the store's bytes")
    #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path) == ["\(hash).safetensors"], "fetched once, nothing else kept")

    let out = cache.deletingLastPathComponent().appendingPathComponent("local-\(UUID().uuidString).png")
    defer { try? FileManager.default.removeItem(at: out) }
    let local = try runFarm(
        [
            "render", "--model", models.appendingPathComponent("tiny").path, "--prompt", byField.prompt, "--width", "24", "--height", "16",
            "--steps", "3", "--cfg", "5", "--sampler", "euler", "--seed", "3", "--out", out.path, "--lora", "\(lora.path):0.8",
        ])
    #expect(local.status == 0, "\(local.stderr)")
    let expected = try PNGImage(pngData: Data(contentsOf: out)).pixels
    for image in try jobs.images(job: job) {
        #expect(try PNGImage(pngData: image.png).pixels == expected, "task \(image.index) differs from farm render's")
    }
    _ = worker
}
