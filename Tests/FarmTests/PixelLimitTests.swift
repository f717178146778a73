import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import StableDiffusion
import Tensors
import TestSupport
import Testing
import Worker

/// Each done task of `jobs` with its size and the worker that rendered it (the `task.done` event), by task id.
private func renderedBy(_ store: JobStore, jobs: [Int64]) throws -> [Int64: (pixels: Int, worker: String)] {
    let rows = try store.testConnection.query(
        """
        SELECT t.id, t.pixels, e.worker_id FROM tasks t JOIN events e ON e.task_id = t.id AND e.kind = 'task.done'
        WHERE t.job_id = ANY($1::bigint[])
        """, ["{" + jobs.map(String.init).joined(separator: ",") + "}"]
    ).rows
    var result: [Int64: (pixels: Int, worker: String)] = [:]
    for row in rows {
        let id: Int64 = try row.decode("id")
        #expect(result[id] == nil, "task \(id) was stored twice")
        result[id] = (try row.decode("pixels"), try row.decode("worker_id"))
    }
    return result
}

/// Small (64×64) and large (256×256) synthetic tasks, alternating, from seed `first`.
private func mixedTasks(_ count: Int, first: Int) -> [TaskParameters] {
    (0..<count).map { index in
        let side = index % 2 == 0 ? 64 : 256
        return TaskParameters(
            prompt: "task \(first + index)", model: "synthetic", width: side, height: side, steps: 2, seed: UInt64(first + index))
    }
}

/// Two worker processes serve the same model with different `--max-pixels`: the coordinator records each limit
/// from its HELLO and never hands the low one a task above it, while every task of a mixed batch finishes. The low
/// worker starts alone, so it must finish the small tasks while the large ones wait (no timing decides which worker
/// gets what); then the high one joins for a second mixed batch that both render at once.
@Test func workersAreNeverHandedTasksAboveTheirAnnouncedLimit() throws {
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    func worker(_ name: String, maxPixels: Int) throws -> FarmProcess {
        try FarmProcess(
            [
                "worker", "--insecure", "--coordinator", endpoint, "--name", name, "--engine", "synthetic", "--synthetic-delay", "0.05",
                "--slots", "2", "--max-pixels", String(maxPixels),
            ], name: name)
    }
    let (lowLimit, highLimit) = (128 * 128, 512 * 512)
    let low = try worker("low", maxPixels: lowLimit)
    func limits() throws -> [String: Int] {
        var limits: [String: Int] = [:]
        for row in try store.testConnection.query("SELECT id, max_pixels FROM workers").rows {
            limits[try row.decode("id")] = try row.decode("max_pixels")
        }
        return limits
    }
    #expect(try waitFor(60) { try limits()["low"] == lowLimit }, "\(low.output)")

    let first = try store.enqueue(name: "mixed-1", model: "synthetic", tasks: mixedTasks(12, first: 0))
    #expect(try waitFor(60) { try store.progress(job: first).counts[.done] == 6 }, "\(coordinator.output)\n\(low.output)")
    // The low worker has nothing left it may take: the large tasks wait, never leased.
    let waiting = try store.testConnection.query(
        "SELECT count(*) FILTER (WHERE state = 'queued' AND attempt = 0) AS n, count(*) AS total FROM tasks WHERE job_id = $1 AND pixels > $2",
        [first, lowLimit]
    ).single()
    #expect(try waiting.decode("n", as: Int.self) == 6 && waiting.decode("total", as: Int.self) == 6)

    let high = try worker("high", maxPixels: highLimit)
    let second = try store.enqueue(name: "mixed-2", model: "synthetic", tasks: mixedTasks(16, first: 100))
    #expect(
        try waitFor(90) { try store.progress(job: first).isFinished && store.progress(job: second).isFinished },
        "\(coordinator.output)\n\(low.output)\n\(high.output)")
    try expectAllDoneOnce(store, job: first, count: 12)
    #expect(try store.progress(job: second).counts == [.done: 16])
    #expect(try limits() == ["low": lowLimit, "high": highLimit])

    let rendered = try renderedBy(store, jobs: [first, second])
    #expect(rendered.count == 28)
    let byLow = rendered.values.filter { $0.worker == "low" }
    #expect(byLow.count >= 6 && byLow.allSatisfy { $0.pixels == 64 * 64 }, "the low worker rendered \(byLow.map(\.pixels))")
    #expect(rendered.values.filter { $0.pixels == 256 * 256 }.allSatisfy { $0.worker == "high" })
    // Each large task was leased once, to the high worker: none was handed to the low one and given back.
    let attempts = try store.testConnection.query(
        "SELECT max(attempt) AS most, min(attempt) AS least FROM tasks WHERE pixels > $1", [lowLimit]
    ).single()
    #expect(try attempts.decode("most", as: Int.self) == 1 && attempts.decode("least", as: Int.self) == 1)
}

/// Without `--max-pixels` a diffusion worker announces what its memory allows beside its models, as
/// `DiffusionRenderer.pixelEstimate` computes it, and logs how it got there; `--max-pixels` replaces it.
@Test func diffusionWorkersAnnounceTheirMemoryEstimate() throws {
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    let estimate = try DiffusionRenderer(modelsFolder: models).pixelEstimate()
    #expect(estimate.maxPixels > 256 * 256, "tiny models leave room for 256² on any test machine: \(estimate)")
    let (conninfo, endpoint) = try farmDatabase()
    let store = JobStore(connection: try Connection(conninfo))
    let coordinator = try startCoordinator(conninfo, endpoint)
    let estimated = try FarmProcess(
        ["worker", "--insecure", "--coordinator", endpoint, "--name", "estimated", "--models", models.path], name: "estimated")
    let given = try FarmProcess(
        ["worker", "--insecure", "--coordinator", endpoint, "--name", "given", "--models", models.path, "--max-pixels", "65536"],
        name: "given")
    func limit(_ name: String) throws -> Int? {
        try store.testConnection.query("SELECT max_pixels FROM workers WHERE id = $1", [name]).rows.first?.decode("max_pixels")
    }
    #expect(try waitFor(60) { try limit("estimated") != nil && limit("given") != nil }, "\(coordinator.output)\n\(estimated.output)")
    #expect(try limit("estimated") == estimate.maxPixels)
    #expect(try limit("given") == 65536)
    #expect(estimated.output.contains("memory allows \(estimate.maxPixels) pixels"), "\(estimated.output)")
    let tooSmall = try runFarmCapturing(["worker", "--insecure", "--max-pixels", "100"])
    #expect(tooSmall.status == 2 && tooSmall.stderr == "farm: --max-pixels must be 4096...2147483647 (width × height), got 100\n")
}

/// The estimate's parts: the weights a renderer may hold at once and the hungriest UNet class among its models.
@Test func pixelEstimatesCountWhatTheRendererMayHold() {
    let gib = 1 << 30
    let sd = WeightsSummary(kind: .model, architecture: .sd, loadedBytes: 4 * gib)
    let xl = WeightsSummary(kind: .model, architecture: .sdxl, loadedBytes: 14 * gib)
    let refiner = WeightsSummary(kind: .model, architecture: .sdxl, loadedBytes: 12 * gib)
    let control = WeightsSummary(kind: .controlNet, architecture: nil, loadedBytes: gib)
    let memory = UInt64(64 * gib)
    // One SD model under a large cache budget: only that model is ever loaded.
    let one = PixelEstimate(memoryBytes: memory, cacheBudgetBytes: 32 * gib, models: [sd], vaeCount: 0, controlNets: [])
    #expect(one.weightsBytes == 4 * gib && one.architecture == .sd)
    #expect(one.maxPixels == Int((memory - (UInt64(gib) + memory / 10) - UInt64(4 * gib)) / 4_700))
    // With a VAE the same model may be loaded twice (its own VAE and the other), within the cache's budget.
    let withVAE = PixelEstimate(memoryBytes: memory, cacheBudgetBytes: 32 * gib, models: [sd], vaeCount: 1, controlNets: [control])
    #expect(withVAE.weightsBytes == 9 * gib)
    // A model and its refiner are both held during a refined render, even beyond a smaller budget.
    let refined = PixelEstimate(memoryBytes: memory, cacheBudgetBytes: 8 * gib, models: [sd, xl, refiner], vaeCount: 0, controlNets: [])
    #expect(refined.weightsBytes == 26 * gib && refined.architecture == .sdxl)
    #expect(refined.maxPixels == Int((memory - (UInt64(gib) + memory / 10) - UInt64(26 * gib)) / 5_000))
    // Many models: the cache's budget bounds them.
    let many = PixelEstimate(
        memoryBytes: memory, cacheBudgetBytes: 32 * gib, models: Array(repeating: xl, count: 5), vaeCount: 0, controlNets: [])
    #expect(many.weightsBytes == 32 * gib)
    // A checkpoint of unknown class counts as SDXL; weights beyond the memory leave no room at all.
    let unknown = PixelEstimate(
        memoryBytes: UInt64(16 * gib), cacheBudgetBytes: 8 * gib,
        models: [sd, WeightsSummary(kind: .model, architecture: nil, loadedBytes: 15 * gib)], vaeCount: 0, controlNets: [])
    #expect(unknown.architecture == nil && unknown.maxPixels == 0)
    #expect(one.description.hasPrefix("\(one.maxPixels) pixels (\(Int(Double(one.maxPixels).squareRoot()))²): 64.0 GiB of memory − 7.4 GiB reserve"))
}

/// A models folder's VAEs (a diffusers `vae` folder, a `.safetensors` of VAE weights) are listed apart from its models.
@Test func diffusionWorkersListTheirVAEsApart() throws {
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    let tiny = models.appendingPathComponent("tiny")
    try FileManager.default.copyItem(at: tiny.appendingPathComponent("vae"), to: models.appendingPathComponent("other-vae"))
    let vaeWeights = try SafeTensorsFile(url: tiny.appendingPathComponent("vae/diffusion_pytorch_model.safetensors")).allTensors()
    try SafeTensorsFile.write(vaeWeights, to: models.appendingPathComponent("file-vae.safetensors"))
    let renderer = try DiffusionRenderer(modelsFolder: models)
    #expect(renderer.models == ["demo", "tiny"])
    #expect(renderer.vaes == ["file-vae", "other-vae"])
    // A task naming a VAE the worker lacks fails as bad input, naming the ones it has.
    var task = TaskParameters(prompt: "a fox", model: "tiny", width: 16, height: 16, steps: 1)
    task.vae = "missing"
    #expect {
        _ = try renderer.render(task, inputs: [:], previewEvery: 0, preview: { _, _ in }, progress: { _, _ in true })
    } throws: { error in
        (error as? RenderError)?.kind == .input && "\(error)" == "unknown VAE \"missing\"; this worker has file-vae, other-vae"
    }
}

/// On a GPU the pixel limit follows the device's memory when it is the smaller; a worker opened on the test's Vulkan
/// device (lavapipe in CI) estimates from the smaller of the two.
@Test func pixelLimitsFollowDeviceMemory() throws {
    let gib: UInt64 = 1 << 30
    #expect(PixelEstimate.renderingMemoryBytes(host: 64 * gib, device: 24 * gib) == 24 * gib)
    #expect(PixelEstimate.renderingMemoryBytes(host: 16 * gib, device: 80 * gib) == 16 * gib)
    #expect(PixelEstimate.renderingMemoryBytes(host: 16 * gib, device: nil) == 16 * gib)
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    let renderer = try DiffusionRenderer(modelsFolder: models)
    let small = try DiffusionRenderer(modelsFolder: models).pixelEstimate(memoryBytes: 4 * gib)
    let large = try DiffusionRenderer(modelsFolder: models).pixelEstimate(memoryBytes: 16 * gib)
    #expect(small.maxPixels < large.maxPixels, "less memory, fewer pixels: \(small) / \(large)")
    if ProcessInfo.processInfo.environment["DIFFUSIONFARM_SKIP_VULKAN"] == "1" { return }
    renderer.device = try VulkanDevice(index: 0)
    let deviceMemory = try #require(renderer.accelerator?.memoryBytes)
    #expect(
        renderer.pixelEstimate().memoryBytes
            == PixelEstimate.renderingMemoryBytes(host: PixelEstimate.availableMemoryBytes(), device: deviceMemory))
}
