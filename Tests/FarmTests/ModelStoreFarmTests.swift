import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import StableDiffusion
import Tensors
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The tiny SD 1.x single-file checkpoint with CLIP's real 49408-token vocabulary (so that worker prompts tokenize),
/// written to a new temporary folder with its sidecar config (`NAME.config.json`); the caller removes the folder.
func tinyCheckpointFile(_ name: String = "tinyfile") throws -> URL {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("StableDiffusionTests/Fixtures/models")
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    var tensors = try SafeTensorsFile(url: fixtures.appendingPathComponent("tiny-sd1.safetensors")).allTensors()
    let key = try #require(tensors.keys.first { $0.hasSuffix("token_embedding.weight") })
    let width = tensors[key]!.shape[1]
    var state: UInt32 = 7
    tensors[key] = Tensor(
        shape: [49408, width],
        values: (0..<(49408 * width)).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return (Float(state >> 8) / Float(1 << 24) - 0.5) * 0.4
        })
    let file = folder.appendingPathComponent("\(name).safetensors")
    try SafeTensorsFile.write(tensors, to: file)
    try FileManager.default.copyItem(
        at: fixtures.appendingPathComponent("tiny-sd1.config.json"), to: folder.appendingPathComponent("\(name).config.json"))
    return file
}

/// One HTTP exchange with extra request headers; answers the status, the headers and the body.
func httpExchange(_ method: String, _ url: String, token: String?, headers: [String: String] = [:], body: Data? = nil) throws
    -> (status: Int, headers: [String: String], body: Data)
{
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 60
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    request.httpBody = body
    final class Outcome: @unchecked Sendable {
        var data: Data?
        var response: HTTPURLResponse?
        var error: Error?
    }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    URLSession.shared.dataTask(with: request) { data, response, error in
        (outcome.data, outcome.response, outcome.error) = (data, response as? HTTPURLResponse, error)
        done.signal()
    }.resume()
    done.wait()
    if let error = outcome.error { throw error }
    let response = try #require(outcome.response)
    var fields: [String: String] = [:]
    for (name, value) in response.allHeaderFields { fields["\(name)".lowercased()] = "\(value)" }
    return (response.statusCode, fields, outcome.data ?? Data())
}

/// A worker with an empty cache renders a job whose model (and the sidecar config stored with it) it fetched from the
/// coordinator's store through a proxy
/// that cuts the first download (the next resumes with `Range`) and corrupts the resumed bytes once (the hash
/// check deletes them and the third download succeeds); the cached file hashes to the store's SHA-256, the image
/// equals `farm render`'s of the same file, `farm models list` shows the worker as a holder, and a second job of
/// the same model fetches nothing.
@Test func workerFetchesAStoreModelResumesAndRetriesACorruptTransferAndFetchesItOnce() throws {
    let checkpoint = try tinyCheckpointFile()
    let store = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
    let cache = FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString)")
    defer {
        for folder in [checkpoint.deletingLastPathComponent(), store, cache] { try? FileManager.default.removeItem(at: folder) }
    }
    let farm = try HTTPFarm(extra: ["--model-store", store.path])
    let jobs = JobStore(connection: try Connection(farm.conninfo))
    let added = try runFarmCapturing(["models", "add", checkpoint.path, "--server", farm.server, "--token", farm.admin])
    #expect(added.status == 0, "\(added.stderr)")
    let hash = try SHA256.hex(ofFile: checkpoint)
    let size = try #require((try FileManager.default.attributesOfItem(atPath: checkpoint.path))[.size] as? Int)
    #expect(added.stdout.contains("sha256 \(hash)"), "\(added.stdout)")
    #expect(try SHA256.hex(ofFile: store.appendingPathComponent(hash)) == hash, "the store keeps the bytes under their hash")

    #expect(added.stdout.contains("with its sidecar config"), "the sidecar beside the file is stored with it: \(added.stdout)")
    #expect(!FileManager.default.fileExists(atPath: cache.path), "the cache starts empty: the sidecar comes with the model")
    let port = try #require(URL(string: farm.server)?.port)
    let proxy = try FaultProxy(upstreamPort: port)
    defer { proxy.stop() }
    proxy.http.cutOnce(afterBodyBytes: size / 3)
    proxy.http.corruptOnce(atBodyOffset: size / 2)
    let metricsPort = try TemporaryPostgres.freePort()
    let worker = try FarmProcess(
        [
            "worker", "--insecure", "--coordinator", farm.endpoint, "--name", "fetcher", "--engine", "diffusion",
            "--model-server", "http://127.0.0.1:\(proxy.port)", "--model-token", farm.submit, "--model-cache", cache.path,
            "--metrics", "127.0.0.1:\(metricsPort)",
        ], name: "fetcher")
    let task = TaskParameters(prompt: "a red fox", model: "tinyfile", width: 24, height: 16, steps: 2, cfgScale: 5, sampler: "euler", seed: 4)
    let first = try jobs.enqueue(name: "fetched", model: "tinyfile", tasks: [task])
    let stored = try jobs.testConnection.query("SELECT parameters->>'model_sha256' AS h FROM tasks WHERE job_id = $1", [first]).single()
    #expect(try stored.decode("h", as: String.self) == hash, "the task carries the stored model's hash")
    #expect(
        try waitFor(180) { try jobs.progress(job: first).counts[.done] == 1 }, "\(farm.coordinator.output)\n\(worker.output)")

    let cached = cache.appendingPathComponent("\(hash).safetensors")
    #expect(try SHA256.hex(ofFile: cached) == hash, "the cached file is the store's bytes")
    let downloads = proxy.http.requests.filter { $0.hasPrefix("GET /v1/models/\(hash)") }
    #expect(downloads.count == 3, "cut, resumed but corrupted, whole: \(downloads)")
    #expect(downloads.dropFirst().first?.lowercased().contains("range: bytes=") == true, "the second download resumes: \(downloads)")
    #expect(!FileManager.default.fileExists(atPath: cache.appendingPathComponent("\(hash).partial").path))
    let sidecar = checkpoint.deletingPathExtension().appendingPathExtension("config.json")
    #expect(try Data(contentsOf: cache.appendingPathComponent("\(hash).config.json")) == Data(contentsOf: sidecar), "the sidecar came with it")
    let samples = { prometheusSamples(String(decoding: try httpRequest("GET", "http://127.0.0.1:\(metricsPort)/metrics").body, as: UTF8.self)) }
    #expect(try samples()["farm_worker_model_fetches_total"] == 1)
    #expect(try samples()["farm_worker_model_verification_failures_total"] == 1)
    #expect(try (samples()["farm_worker_model_fetch_bytes_total"] ?? 0) >= Double(size), "the bytes of every attempt are counted")

    // The farm's picture is farm render's of the same file.
    let image = try PNGImage(pngData: try #require(try jobs.images(job: first).first).png)
    let out = cache.deletingLastPathComponent().appendingPathComponent("local-\(UUID().uuidString).png")
    defer { try? FileManager.default.removeItem(at: out) }
    let local = try runFarm(
        [
            "render", "--model", checkpoint.path, "--prompt", task.prompt, "--width", "24", "--height", "16", "--steps", "2", "--cfg", "5",
            "--sampler", "euler", "--seed", "4", "--out", out.path,
        ])
    #expect(local.status == 0, "\(local.stderr)")
    #expect(image.pixels == (try PNGImage(pngData: Data(contentsOf: out))).pixels)

    // The worker announced what it holds: `farm models list` names it.
    #expect(
        try waitFor(30) {
            let listed = try runFarmCapturing(["models", "list", "--json", "--database", farm.conninfo])
            let models = try JSONDecoder().decode([ModelRecord].self, from: Data(listed.stdout.utf8))
            return models.first?.holders == ["fetcher"]
        })
    let table = try runFarmCapturing(["models", "list", "--server", farm.server, "--token", farm.submit])
    #expect(table.stdout.contains("tinyfile") && table.stdout.contains(hash) && table.stdout.contains("fetcher"), "\(table.stdout)")

    // A second job of the same model downloads nothing.
    var again = task
    again.seed = 5
    let second = try jobs.enqueue(name: "cached", model: "tinyfile", tasks: [again])
    #expect(try waitFor(120) { try jobs.progress(job: second).counts[.done] == 1 }, "\(worker.output)")
    #expect(proxy.http.requests.filter { $0.hasPrefix("GET /v1/models/") }.count == 3, "no download for the second job")
    #expect(try samples()["farm_worker_model_fetches_total"] == 1)
    _ = worker
}

/// The model routes: a token is needed (401), an unknown hash is 404, a range past the end 416 with `Content-Range:
/// bytes */SIZE`, `bytes=N-` answers 206 with the rest; an upload whose declared SHA-256 does not match is refused
/// (422) and stores nothing; adding and removing need an admin token (403 for a submit token).
@Test func modelRoutesNeedTokensAndAnswerRangesAndRefuseDamagedUploads() throws {
    let checkpoint = try tinyCheckpointFile("routes")
    let store = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
    defer { for folder in [checkpoint.deletingLastPathComponent(), store] { try? FileManager.default.removeItem(at: folder) } }
    let farm = try HTTPFarm(extra: ["--model-store", store.path])
    let bytes = try Data(contentsOf: checkpoint)
    let hash = SHA256.hex(of: bytes)
    let base = farm.server + "/v1"

    let wrong = String(repeating: "0", count: 64)
    let damaged = try httpExchange("PUT", base + "/model-store/routes", token: farm.admin, headers: ["X-Model-SHA256": wrong], body: bytes)
    #expect(damaged.status == 422, "\(String(decoding: damaged.body, as: UTF8.self))")
    #expect(try httpExchange("GET", base + "/model-store", token: farm.submit).body == Data("[]".utf8))
    #expect(try httpExchange("PUT", base + "/model-store/routes", token: farm.submit, body: bytes).status == 403)
    let badConfig = Data("not json".utf8).base64EncodedString()
    let refused = try httpExchange("PUT", base + "/model-store/routes", token: farm.admin, headers: ["X-Model-Config": badConfig], body: bytes)
    #expect(refused.status == 400, "a sidecar that is not a JSON object is refused before any byte is stored")
    let sidecar = Data(#"{"prediction_type":"epsilon"}"#.utf8)
    let put = try httpExchange(
        "PUT", base + "/model-store/routes?kind=checkpoint", token: farm.admin,
        headers: ["X-Model-SHA256": hash, "X-Model-Config": sidecar.base64EncodedString()], body: bytes)
    #expect(put.status == 201)
    #expect(try JSONDecoder().decode(ModelRecord.self, from: put.body).sha256 == hash)
    #expect(
        try (FileManager.default.contentsOfDirectory(atPath: store.path)).filter { !$0.hasPrefix(".") } == [hash],
        "nothing of the damaged upload is kept")

    #expect(try httpExchange("GET", base + "/models/\(hash)", token: nil).status == 401)
    #expect(try httpExchange("GET", base + "/models/\(wrong)", token: farm.submit).status == 404)
    #expect(try httpExchange("GET", base + "/models/not-a-hash", token: farm.submit).status == 404)
    let whole = try httpExchange("GET", base + "/models/\(hash)", token: farm.submit)
    #expect(whole.status == 200 && whole.body == bytes)
    let head = try httpExchange("HEAD", base + "/models/\(hash)", token: farm.submit)
    #expect(head.status == 200 && head.headers["content-length"] == String(bytes.count) && head.headers["accept-ranges"] == "bytes")
    #expect(head.headers["x-model-config"].flatMap { Data(base64Encoded: $0) } == sidecar, "the sidecar travels with the bytes")
    let rest = try httpExchange("GET", base + "/models/\(hash)", token: farm.submit, headers: ["Range": "bytes=1000-"])
    #expect(rest.status == 206 && rest.body == bytes.dropFirst(1000))
    #expect(rest.headers["content-range"] == "bytes 1000-\(bytes.count - 1)/\(bytes.count)")
    let past = try httpExchange("GET", base + "/models/\(hash)", token: farm.submit, headers: ["Range": "bytes=\(bytes.count)-"])
    #expect(past.status == 416 && past.headers["content-range"] == "bytes */\(bytes.count)")

    #expect(try httpExchange("DELETE", base + "/model-store/routes", token: farm.submit).status == 403)
    #expect(try httpExchange("DELETE", base + "/model-store/routes", token: farm.admin).status == 200)
    #expect(try httpExchange("GET", base + "/models/\(hash)", token: farm.submit).status == 404)
    #expect(!FileManager.default.fileExists(atPath: store.appendingPathComponent(hash).path), "the last name's bytes go with it")

    // Straight into the database and the store folder, without the API.
    let direct = ["--database", farm.conninfo, "--model-store", store.path]
    let added = try runFarmCapturing(["models", "add", checkpoint.path, "--name", "direct", "--kind", "checkpoint"] + direct)
    #expect(added.status == 0 && added.stdout.contains("sha256 \(hash)"), "\(added.stderr)")
    #expect(try SHA256.hex(ofFile: store.appendingPathComponent(hash)) == hash)
    #expect(try runFarmCapturing(["models", "list", "--database", farm.conninfo]).stdout.contains("direct"))
    #expect(try runFarmCapturing(["models", "remove", "direct"] + direct).status == 0)
    #expect(try runFarmCapturing(["models", "remove", "direct"] + direct).status == 2, "an unknown name is the caller's mistake")
    #expect(!FileManager.default.fileExists(atPath: store.appendingPathComponent(hash).path))

    // The worker's model token is a secret: --print-config masks it.
    let config = try runFarmCapturing(
        ["worker", "--insecure", "--model-server", "http://127.0.0.1:1", "--model-token", "secret-token-123", "--print-config"])
    #expect(config.stdout.contains("model-token = ***") && !config.stdout.contains("secret-token-123"), "\(config.stdout)\(config.stderr)")
}

/// A worker that cannot fetch a task's model (its token is refused) hands the task back as a host failure, saying
/// why, after its bounded attempts, and keeps nothing in its cache.
@Test func aModelThatCannotBeFetchedIsAHostFailureThatSaysWhy() throws {
    let checkpoint = try tinyCheckpointFile("unfetchable")
    let store = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)")
    let cache = FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString)")
    defer { for folder in [checkpoint.deletingLastPathComponent(), store, cache] { try? FileManager.default.removeItem(at: folder) } }
    let farm = try HTTPFarm(extra: ["--model-store", store.path])
    let jobs = JobStore(connection: try Connection(farm.conninfo))
    #expect(try runFarmCapturing(["models", "add", checkpoint.path, "--server", farm.server, "--token", farm.admin]).status == 0)
    let worker = try FarmProcess(
        [
            "worker", "--insecure", "--coordinator", farm.endpoint, "--name", "locked-out", "--engine", "diffusion",
            "--model-server", farm.server, "--model-token", String(repeating: "f", count: 64), "--model-cache", cache.path,
        ], name: "locked-out")
    let job = try jobs.enqueue(
        name: "unfetchable", model: "unfetchable",
        tasks: [TaskParameters(prompt: "a cat", model: "unfetchable", width: 24, height: 16, steps: 2, cfgScale: 5, sampler: "euler")])
    let failed = {
        try jobs.testConnection.query(
            "SELECT count(*)::bigint AS n FROM events WHERE job_id = $1 AND detail LIKE '%could not be fetched%HTTP 401%'", [job]
        ).single().decode("n", as: Int64.self)
    }
    #expect(try waitFor(120) { try failed() >= 1 }, "\(worker.output)")
    #expect(try jobs.progress(job: job).counts[.done] == nil)
    #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).isEmpty, "nothing of a refused download is kept")
    _ = worker
}
