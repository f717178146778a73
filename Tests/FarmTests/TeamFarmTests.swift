import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

/// The farm for teams, end to end with real processes and a throwaway PostgreSQL: the web UI's img2img batch over a
/// folder submitted with `--server`, owners sharing workers fairly, quotas, and tags.
@Suite(.serialized) struct TeamFarmTests {
    /// A folder of 20 init images (24×16, each its own) and 20 masks (two patterns, so that each mask file is stored
    /// once however many tasks name it), and a spec beside them that names the folders.
    static func batchFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("batch-\(UUID().uuidString.prefix(8))")
        for sub in ["in", "masks"] {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for index in 0..<20 {
            let name = String(format: "img%02d.png", index)
            let pixels = (0..<(24 * 16 * 3)).map { UInt8(($0 * (index + 3) + index * 17) % 251) }
            try PNGImage(width: 24, height: 16, format: .rgb, pixels: pixels).pngData().write(to: folder.appendingPathComponent("in/" + name))
            let mask = (0..<(24 * 16)).map { index % 2 == 0 ? ($0 % 24 < 12 ? UInt8(255) : 0) : ($0 / 24 < 8 ? UInt8(255) : 0) }
            try PNGImage(width: 24, height: 16, format: .gray, pixels: mask).pngData().write(to: folder.appendingPathComponent("masks/" + name))
        }
        try """
        name: batch
        model: tiny
        init_images: in
        masks: masks/
        defaults: {prompt: "a cat in a garden", negative: blurry, steps: 3, cfg: 5, sampler: euler, seed: 3, strength: 0.7, mask_blur: 2}
        """.write(to: folder.appendingPathComponent("batch.yaml"), atomically: true, encoding: .utf8)
        return folder
    }

    /// `farm render`'s PNG for one init image and mask with the spec's settings.
    static func rendered(models: URL, image: String, mask: String, out: URL) throws -> PNGImage {
        let result = try runFarm([
            "render", "--model", models.appendingPathComponent("tiny").path, "--prompt", "a cat in a garden", "--negative", "blurry",
            "--steps", "3", "--cfg", "5", "--sampler", "euler", "--seed", "3", "--strength", "0.7", "--mask-blur", "2",
            "--init-image", image, "--mask", mask, "--out", out.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        return try PNGImage(pngData: Data(contentsOf: out))
    }

    /// 20 init images and their masks from folders, submitted with `--server`, render on a real worker to the images
    /// `farm render` makes of the same inputs; each input file is uploaded once; and a `--prompt --init-image` job
    /// goes over `--server` too.
    @Test func img2imgBatchOverAFolderWithServerMatchesFarmRender() throws {
        let models = try modelsFolderWithTinyModel()
        let folder = try Self.batchFolder()
        defer {
            try? FileManager.default.removeItem(at: models)
            try? FileManager.default.removeItem(at: folder)
        }
        let farm = try HTTPFarm()
        let worker = try FarmProcess(
            ["worker", "--insecure", "--coordinator", farm.endpoint, "--name", "painter", "--models", models.path], name: "painter")
        let store = JobStore(connection: try Connection(farm.conninfo))
        let submitted = try runFarmCapturing([
            "submit", folder.appendingPathComponent("batch.yaml").path, "--server", farm.server, "--token", farm.submit, "--wait",
        ])
        #expect(submitted.status == 0, "\(submitted.stderr)\n\(farm.coordinator.output)\n\(worker.output)")
        let job = try #require(Int64(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(try store.progress(job: job).counts == [.done: 20])
        #expect(try store.jobOwner(job) == "test-submit")
        // 20 images and 2 distinct masks, each stored once.
        #expect(try store.testConnection.query("SELECT count(*)::integer AS n FROM input_blobs").single().decode("n", as: Int.self) == 22)
        let images = try store.images(job: job)
        #expect(images.map(\.index) == Array(0..<20))
        for image in images {
            let name = String(format: "img%02d.png", image.index)
            let local = try Self.rendered(
                models: models, image: folder.appendingPathComponent("in/" + name).path,
                mask: folder.appendingPathComponent("masks/" + name).path, out: folder.appendingPathComponent("local.png"))
            let farmed = try PNGImage(pngData: image.png)
            #expect(farmed.pixels == local.pixels, "task \(image.index) (\(name)) differs from farm render's")
            #expect(farmed.textValue("parameters") == local.textValue("parameters"))
        }
        // One prompt over --server with its inputs uploaded first.
        let single = try runFarmCapturing([
            "submit", "--server", farm.server, "--token", farm.submit, "--wait", "--model", "tiny", "--prompt", "a cat in a garden",
            "--negative", "blurry", "--steps", "3", "--cfg", "5", "--sampler", "euler", "--seed", "3", "--strength", "0.7", "--mask-blur", "2",
            "--init-image", folder.appendingPathComponent("in/img05.png").path, "--mask", folder.appendingPathComponent("masks/img05.png").path,
        ])
        #expect(single.status == 0, "\(single.stderr)")
        let one = try #require(Int64(single.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let oneImage = try PNGImage(pngData: try #require(try store.images(job: one).first).png)
        #expect(oneImage.pixels == (try PNGImage(pngData: images[5].png)).pixels)
        _ = worker
    }

    /// Two owners at equal priority on two workers: a 2,000-task job and a 50-task job submitted after it. The small job
    /// finishes while the large one still runs, and while both had work the workers split about evenly between them.
    @Test func ownersShareWorkersFairly() throws {
        let farm = try HTTPFarm()
        let alice = try runFarmCapturing(["tokens", "create", "--role", "submit", "--owner", "alice", "--database", farm.conninfo])
        let bob = try runFarmCapturing(["tokens", "create", "--role", "submit", "--owner", "bob", "--database", farm.conninfo])
        let workers = try (0..<2).map { try startSyntheticWorker(farm.endpoint, name: "fair\($0)", delay: 0.05) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fair-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func submit(_ token: String, seeds: String, name: String) throws -> Int64 {
            let spec = folder.appendingPathComponent(name + ".yaml")
            try "name: \(name)\nmodel: synthetic\ndefaults: {width: 32, height: 32, steps: 2}\nsweep: {prompt: [p], seed: \"\(seeds)\"}\n"
                .write(to: spec, atomically: true, encoding: .utf8)
            let result = try runFarmCapturing(["submit", spec.path, "--server", farm.server, "--token", token])
            #expect(result.status == 0, "\(result.stderr)")
            return try #require(Int64(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let store = JobStore(connection: try Connection(farm.conninfo))
        let large = try submit(alice.stdout.trimmingCharacters(in: .whitespacesAndNewlines), seeds: "1-2000", name: "large")
        #expect(try waitFor(60) { try store.progress(job: large).counts[.done, default: 0] >= 20 }, "\(farm.coordinator.output)")
        let small = try submit(bob.stdout.trimmingCharacters(in: .whitespacesAndNewlines), seeds: "1-50", name: "small")
        #expect(try waitFor(120) { try store.progress(job: small).isFinished }, "\(farm.coordinator.output)\n\(workers[0].output)")
        #expect(try !store.progress(job: large).isFinished, "the large job finished first")
        // The window from the small job's first task to its last: each owner's share of the tasks that started then.
        let window = try store.testConnection.query(
            """
            SELECT count(*) FILTER (WHERE t.job_id = $1)::integer AS small, count(*) FILTER (WHERE t.job_id = $2)::integer AS large
            FROM tasks t, (SELECT min(started_at) AS first, max(started_at) AS last FROM tasks WHERE job_id = $1) w
            WHERE t.started_at BETWEEN w.first AND w.last
            """, [small, large]
        ).single()
        let (smallShare, largeShare) = (try window.decode("small", as: Int.self), try window.decode("large", as: Int.self))
        let share = Double(smallShare) / Double(smallShare + largeShare)
        print("fair share while both ran: bob \(smallShare) tasks, alice \(largeShare) (bob's share \(String(format: "%.2f", share)))")
        #expect(abs(share - 0.5) <= 0.1, "bob's share was \(share) (\(smallShare) vs \(largeShare)); equal ±20 % is 0.4...0.6")
        // A quota refuses a submission over it, in one line.
        #expect(try runFarmCapturing(["quotas", "set", "bob", "--max-queued", "10", "--database", farm.conninfo]).status == 0)
        let over = try runFarmCapturing([
            "submit", "--server", farm.server, "--token", bob.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "--model", "synthetic",
            "--prompt", "p", "--width", "32", "--height", "32", "--count", "11",
        ])
        #expect(over.status != 0 && over.stderr.contains("owner \"bob\" may have 10 tasks queued and has 0"), "\(over.stderr)")
        _ = workers
    }

    /// Workers announce tags; a task requiring tags goes only to a worker with all of them, others anywhere.
    @Test func tagsRouteTasksToWorkersThatHaveThem() throws {
        let (conninfo, endpoint) = try farmDatabase()
        let coordinator = try startCoordinator(conninfo, endpoint)
        let workers = try [("plain", [String]()), ("gpu", ["gpu"]), ("gpu-big", ["gpu", "big-memory"])].map { name, tags in
            try FarmProcess(
                ["worker", "--insecure", "--coordinator", endpoint, "--name", name, "--engine", "synthetic", "--synthetic-delay", "0.02"]
                    + tags.flatMap { ["--tag", $0] }, name: name)
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tags-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let spec = folder.appendingPathComponent("tags.yaml")
        try """
        name: tags
        model: synthetic
        defaults: {width: 32, height: 32, steps: 2}
        items:
          - {prompt: a, seed: 1, require: [gpu]}
          - {prompt: b, seed: 2, require: [gpu, big-memory]}
          - {prompt: c, seed: 3, require: gpu}
          - {prompt: d, seed: 4}
          - {prompt: e, seed: 5, require: [gpu, big-memory]}
          - {prompt: f, seed: 6, require: [tpu]}
        """.write(to: spec, atomically: true, encoding: .utf8)
        let submitted = try runFarmCapturing(["submit", spec.path, "--database", conninfo])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        let job = try #require(Int64(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let store = JobStore(connection: try Connection(conninfo))
        let finished = try waitFor(60) { try store.progress(job: job).counts[.done] == 5 }
        let counts = try store.progress(job: job).counts
        #expect(finished, "\(counts)\n\(coordinator.output)\n\(workers.map(\.output).joined(separator: "\n"))")
        let byIndex = try renderingWorkers(store, job: job)
        #expect(["gpu", "gpu-big"].contains(byIndex[0]) && ["gpu", "gpu-big"].contains(byIndex[2]), "\(byIndex)")
        #expect(byIndex[1] == "gpu-big" && byIndex[4] == "gpu-big", "\(byIndex)")
        #expect(byIndex[3] != nil && byIndex[5] == nil, "\(byIndex)")
        // A tag no worker has: the task waits, never leased.
        let waiting = try store.testConnection.query("SELECT state, attempt FROM tasks WHERE job_id = $1 AND index = 5", [job]).single()
        #expect(try waiting.decode("state", as: String.self) == "queued" && waiting.decode("attempt", as: Int.self) == 0)
        _ = (coordinator, workers)
    }
}
