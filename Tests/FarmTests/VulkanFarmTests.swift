import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import Testing

/// Mean absolute difference of two images' 8-bit samples (in 1/255 steps); infinite when their sizes differ.
private func meanDifference(_ a: PNGImage, _ b: PNGImage) -> Double {
    guard a.width == b.width, a.height == b.height, a.pixels.count == b.pixels.count else { return .infinity }
    let total = zip(a.pixels, b.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }
    return Double(total) / Double(max(a.pixels.count, 1))
}

/// A farm with one CPU worker and one `--device vulkan` worker renders a batch: the Vulkan worker announces its
/// GPU (farm workers shows it), both render tasks, and every image is `farm render`'s on the CPU within 1/255 on
/// average (the CPU worker's exactly); `farm render --device vulkan` draws the Vulkan worker's picture.
@Test func cpuAndVulkanWorkersRenderOneBatch() throws {
    if ProcessInfo.processInfo.environment["DIFFUSIONFARM_SKIP_VULKAN"] == "1" { return }
    let models = try modelsFolderWithTinyModel()
    defer { try? FileManager.default.removeItem(at: models) }
    let (conninfo, endpoint) = try farmDatabase()
    let coordinator = try startCoordinator(conninfo, endpoint)
    let store = JobStore(connection: try Connection(conninfo))
    func worker(_ name: String, device: String) throws -> FarmProcess {
        try FarmProcess(
            ["worker", "--insecure", "--coordinator", endpoint, "--name", name, "--models", models.path, "--device", device], name: name)
    }
    let cpu = try worker("cpu-worker", device: "cpu")
    let gpu = try worker("vulkan-worker", device: "vulkan")
    // Both are connected before the batch is queued, so each is handed a task at once.
    #expect(try waitFor(60) { try store.workers().filter { $0.state == .online }.count == 2 }, "\(cpu.output)\n\(gpu.output)")
    let devices = Dictionary(uniqueKeysWithValues: try store.workers().map { ($0.name, $0.device) })
    #expect(devices["vulkan-worker"]?.contains("GPU vulkan:0") == true, "\(devices)")
    #expect(devices["cpu-worker"]?.contains("GPU") == false, "\(devices)")

    let seeds: [UInt64] = [1, 2, 3, 4]
    let tasks = seeds.map { TaskParameters(prompt: "a fox", model: "tiny", width: 24, height: 16, steps: 3, sampler: "euler", seed: $0) }
    let job = try store.enqueue(name: "mixed devices", model: "tiny", maxAttempts: 1, tasks: tasks)
    #expect(try waitFor(240) { try store.progress(job: job).isFinished }, "\(coordinator.output)\n\(cpu.output)\n\(gpu.output)")
    #expect(try store.progress(job: job).counts == [.done: seeds.count])
    let renderers = try renderingWorkers(store, job: job)
    #expect(Set(renderers.values) == ["cpu-worker", "vulkan-worker"], "\(renderers)")

    let images = try store.images(job: job)
    for (index, seed) in seeds.enumerated() {
        let out = models.appendingPathComponent("cpu-\(seed).png").path
        let render = try runFarm([
            "render", "--model", models.appendingPathComponent("tiny").path, "--prompt", "a fox", "--steps", "3", "--sampler", "euler",
            "--seed", String(seed), "--width", "24", "--height", "16", "--out", out,
        ])
        #expect(render.status == 0, "\(render.stderr)")
        let reference = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: out)))
        let farmed = try PNGImage(pngData: try #require(images.first { $0.index == index }).png)
        let difference = meanDifference(farmed, reference)
        if renderers[index] == "cpu-worker" {
            #expect(farmed.pixels == reference.pixels, "seed \(seed): the CPU worker's picture differs from farm render's")
        } else {
            #expect(difference <= 1, "seed \(seed): the Vulkan worker's picture differs from the CPU's by \(difference)/255 on average")
            let deviceOut = models.appendingPathComponent("vulkan-\(seed).png").path
            let onDevice = try runFarm([
                "render", "--model", models.appendingPathComponent("tiny").path, "--prompt", "a fox", "--steps", "3", "--sampler",
                "euler", "--seed", String(seed), "--width", "24", "--height", "16", "--device", "vulkan", "--out", deviceOut,
            ])
            #expect(onDevice.status == 0, "\(onDevice.stderr)")
            let rendered = try PNGImage(pngData: Data(contentsOf: URL(fileURLWithPath: deviceOut)))
            #expect(rendered.pixels == farmed.pixels, "seed \(seed): farm render --device vulkan differs from the Vulkan worker")
        }
    }
}

/// `farm render --device` refuses a name it does not know, and a device this host lacks, in one line.
@Test func renderRefusesUnknownDevices() throws {
    let common = ["render", "--model", "demo", "--prompt", "x", "--steps", "1", "--out", "/tmp/never-written.png"]
    let bad = try runFarm(common + ["--device", "gpu"])
    #expect(bad.status == 2 && bad.stderr.contains("--device gpu: expected cpu, vulkan or vulkan:N"), "\(bad.stderr)")
    let missing = try runFarm(common + ["--device", "vulkan:7"])
    #expect(missing.status == 2 && missing.stderr.contains("--device vulkan:7"), "\(missing.stderr)")
}

/// `farm bench --device vulkan` times the demo model on the Vulkan device and names the device.
@Test func benchRunsOnVulkan() throws {
    if ProcessInfo.processInfo.environment["DIFFUSIONFARM_SKIP_VULKAN"] == "1" { return }
    let process = Process()
    process.executableURL = farmBinary
    process.arguments = ["bench", "--model", "demo", "--sizes", "64", "--steps", "2", "--device", "vulkan"]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "\(text)")
    #expect(text.contains("device: vulkan:0 (") && text.contains("64×64"), "\(text)")
}
