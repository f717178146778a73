import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

/// Bytes that do not compress, as PNGs do not, different for each `seed`.
private func incompressible(_ count: Int, seed: Int) -> Data {
    var state = UInt64(seed + 1) &* 0x9E37_79B9_7F4A_7C15
    return Data(
        (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        })
}

/// The images, tasks and events tables with their TOAST and indexes, in bytes.
private func tableBytes(_ connection: Connection) throws -> Int64 {
    try connection.query(
        "SELECT (pg_total_relation_size('images') + pg_total_relation_size('tasks') + pg_total_relation_size('events'))::bigint AS b"
    ).single().decode("b")
}

@Test func farmPruneFreesTheSpaceOfAThousandImagesAndLeavesRunningJobsAlone() throws {
    let (conninfo, connection) = try migratedDatabase()
    let store = JobStore(connection: connection)
    let worker = WorkerCapabilities(models: ["synthetic"])
    #expect(try store.registerWorker(WireMessage.Hello(workerID: "w", host: "h", models: ["synthetic"], slots: 1)) == .online)
    // A running job first: one image stored, one task running, one queued.
    let running = try store.enqueue(name: "running", model: "synthetic", tasks: syntheticTasks(3))
    let held = try store.claim(workerID: "w", capabilities: worker, limit: 2, leaseSeconds: 600)
    let kept = incompressible(16_384, seed: -1)
    #expect(try store.complete(.init(taskID: held[0].taskID, attempt: 1, width: 32, height: 32, seed: 0), png: kept, workerID: "w") == .stored)
    // Then 1,000 finished images of 16 KiB in ten jobs (the running job paused meanwhile, so that no claim takes its queued task).
    try store.pause(job: running)
    var finished: [Int64] = []
    for part in 0..<10 {
        let job = try store.enqueue(name: "finished-\(part)", model: "synthetic", tasks: syntheticTasks(100))
        finished.append(job)
        while case let claimed = try store.claim(workerID: "w", capabilities: worker, limit: 100, leaseSeconds: 600), !claimed.isEmpty {
            for assignment in claimed {
                let header = WireMessage.ResultHeader(taskID: assignment.taskID, attempt: assignment.attempt, width: 32, height: 32, seed: 0)
                #expect(try store.complete(header, png: incompressible(16_384, seed: Int(assignment.taskID)), workerID: "w") == .stored)
            }
        }
    }
    #expect(try finished.allSatisfy { try store.progress(job: $0).counts == [.done: 100] })
    try store.resume(job: running)
    try connection.query(
        "UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = ANY($1::bigint[])",
        ["{\(finished.map(String.init).joined(separator: ","))}"])
    try connection.query("VACUUM (ANALYZE) images, tasks, events")
    let before = try tableBytes(connection)

    let pruned = try runFarmCapturing(["prune", "--older-than", "1d", "--json", "--database", conninfo])
    #expect(pruned.status == 0, "\(pruned.stderr)")
    let report = try JSONDecoder().decode(PruneReport.self, from: Data(pruned.stdout.utf8))
    let after = try tableBytes(connection)
    print(
        "farm prune of 1,000 images of 16 KiB: reported \(report.bytesFreed) bytes freed (\(report.imageBytes) of PNGs, \(report.rowBytes) of rows); tables \(before) → \(after) bytes after its VACUUM (\(before - after) freed); its own figures \(report.relationBytesBefore ?? 0) → \(report.relationBytesAfter ?? 0)"
    )
    #expect(report.jobs == 10 && report.images == 1000 && report.tasks == 1000 && report.events == 1010)
    #expect(report.imageBytes == 1000 * 16_384 && report.bytesFreed > report.imageBytes)
    #expect(before - after >= 1000 * 16_384 * 9 / 10, "the tables shrank by the images' size: \(before) → \(after)")
    #expect(report.relationBytesAfter == after)

    // The running job is untouched: its tasks, its image and its lease.
    #expect(try store.progress(job: running).counts == [.queued: 1, .running: 1, .done: 1])
    #expect(try store.images(job: running).map(\.png) == [kept])
    #expect(try store.jobDetail(running)?.state == .active)
    let second = try runFarmCapturing(["prune", "--older-than", "1d", "--database", conninfo])
    #expect(second.status == 0 && second.stdout.hasPrefix("pruned 0 job(s)"), "\(second.stdout)\(second.stderr)")
    let bad = try runFarmCapturing(["prune", "--older-than", "soon", "--database", conninfo])
    #expect(bad.status == 2 && bad.stderr.contains("--older-than"), "\(bad.stderr)")
}

@Test func imageDirectoryServesFetchTheAPIAndPruneAndJobsExpire() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("farm-images-\(UUID().uuidString.prefix(8))")
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("farm-fetched-\(UUID().uuidString.prefix(8))")
    defer {
        try? FileManager.default.removeItem(at: folder)
        try? FileManager.default.removeItem(at: out)
    }
    let farm = try HTTPFarm(extra: ["--image-dir", folder.path, "--expiry-seconds", "1"])
    let worker = try startSyntheticWorker(farm.endpoint, name: "files", delay: 0.05)
    let spec = FileManager.default.temporaryDirectory.appendingPathComponent("files-\(UUID().uuidString.prefix(6)).yaml")
    defer { try? FileManager.default.removeItem(at: spec) }
    try """
    name: files
    model: synthetic
    defaults: {steps: 2, width: 32, height: 32}
    sweep: {prompt: ["a fox"], seed: "1-3"}
    """.write(to: spec, atomically: true, encoding: .utf8)
    let submitted = try runFarmCapturing(["submit", spec.path, "--server", farm.server, "--token", farm.submit, "--wait"])
    #expect(submitted.status == 0, "\(submitted.stderr)\n\(farm.coordinator.output)\n\(worker.output)")
    let job = try #require(Int64(submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    let store = JobStore(connection: try Connection(farm.conninfo))

    // The database keeps paths; the files are named by their SHA-256 and hold the PNGs.
    let rows = try store.testConnection.query(
        "SELECT i.task_id, i.path, i.bytes, i.png IS NULL AS moved, encode(i.sha256, 'hex') AS hash FROM images i JOIN tasks t ON t.id = i.task_id WHERE t.job_id = $1",
        [job]
    ).rows
    #expect(rows.count == 3)
    var files: [Int64: Data] = [:]
    for row in rows {
        let path: String = try row.decode("path")
        let hash: String = try row.decode("hash")
        let data = try #require(FileManager.default.contents(atPath: path))
        #expect(try row.decode("moved", as: Bool.self) && path.hasPrefix(folder.path) && path.hasSuffix("/\(hash).png"))
        let bytes: Int64 = try row.decode("bytes")
        #expect(SHA256.hex(of: data) == hash && Int64(data.count) == bytes)
        files[try row.decode("task_id")] = data
    }
    // The API and `farm fetch` (database and HTTP) read them from the folder.
    for (task, data) in files {
        let answer = try httpRequest("GET", "\(farm.server)/v1/tasks/\(task)/image", token: farm.submit)
        #expect(answer.status == 200 && answer.contentType == "image/png" && answer.body == data)
    }
    let listed = try httpRequest("GET", "\(farm.server)/v1/jobs/\(job)/images", token: farm.submit)
    #expect(listed.status == 200 && ((try? JSONSerialization.jsonObject(with: listed.body)) as? [Any])?.count == 3)
    let fetched = try runFarmCapturing(["fetch", String(job), "--out", out.path, "--database", farm.conninfo])
    #expect(fetched.status == 0 && fetched.stdout.hasPrefix("wrote 3 image(s)"), "\(fetched.stdout)\(fetched.stderr)")
    let overHTTP = out.appendingPathComponent("http")
    let fetchedHTTP = try runFarmCapturing(["fetch", String(job), "--out", overHTTP.path, "--server", farm.server, "--token", farm.submit])
    #expect(fetchedHTTP.status == 0, "\(fetchedHTTP.stderr)")
    for folderFetched in [out, overHTTP] {
        let written = try FileManager.default.contentsOfDirectory(atPath: folderFetched.path).filter { $0.hasSuffix(".png") }
        #expect(Set(try written.map { try Data(contentsOf: folderFetched.appendingPathComponent($0)) }) == Set(files.values))
    }

    // Prune over HTTP is an admin's; it removes the rows and the files.
    let refused = try runFarmCapturing(["prune", "--older-than", "1s", "--server", farm.server, "--token", farm.submit])
    #expect(refused.status == 2, "\(refused.stdout)\(refused.stderr)")
    #expect(
        waitFor(30) {
            (try? store.testConnection.query("SELECT 1 FROM jobs WHERE id = $1 AND finished_at < now() - interval '1.5 seconds'", [job]).rows.count)
                == 1
        })
    let pruned = try runFarmCapturing(["prune", "--older-than", "1s", "--json", "--server", farm.server, "--token", farm.admin])
    #expect(pruned.status == 0, "\(pruned.stderr)")
    let report = try JSONDecoder().decode(PruneReport.self, from: Data(pruned.stdout.utf8))
    #expect(report.jobs == 1 && report.images == 3 && report.files == 3 && report.imageBytes == 0)
    #expect(report.fileBytes == Int64(files.values.map(\.count).reduce(0, +)))
    let left = try FileManager.default.subpathsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".png") }
    #expect(left.isEmpty, "\(left)")
    #expect(try httpRequest("GET", "\(farm.server)/v1/tasks/\(files.keys.first!)/image", token: farm.submit).status == 404)

    // A job's own expires_after: the coordinator removes it by itself once it is past.
    let expiring = try runFarmCapturing([
        "submit", spec.path, "--server", farm.server, "--token", farm.submit, "--wait", "--expires-after", "1s", "--name", "expiring",
    ])
    #expect(expiring.status == 0, "\(expiring.stderr)")
    let expiringJob = try #require(Int64(expiring.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    let gone = waitFor(60) {
        (try? store.testConnection.query("SELECT 1 FROM jobs WHERE id = $1 AND pruned_at IS NOT NULL", [expiringJob]).rows.count) == 1
    }
    #expect(gone, "\(farm.coordinator.output)")
    #expect(try store.images(job: expiringJob).isEmpty && store.jobCounts(expiringJob)?.done == 3)
    withExtendedLifetime(worker) {}
}
