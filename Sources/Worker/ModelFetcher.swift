import CoreMetrics
import FarmModel
import Foundation
import Logging

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Where a worker fetches store models from: the coordinator's HTTP API (`--model-server`, `--model-token`) and the
/// cache they go into.
public struct ModelSource: Sendable {
    /// The coordinator's HTTP API (`http://HOST:PORT`).
    public var server: URL
    /// A token of any role, sent as `Authorization: Bearer`.
    public var token: String?
    /// The cache folder.
    public var cacheFolder: URL
    /// Bytes the cache may hold (nil: no limit).
    public var cacheBudgetBytes: Int64?
    /// Downloads tried per model before the task fails over to another worker.
    public var attempts = 4
    /// The first wait between attempts, doubled after each.
    public var backoffSeconds = 0.5

    /// Makes a source.
    public init(server: URL, token: String?, cacheFolder: URL, cacheBudgetBytes: Int64?) {
        self.server = server
        self.token = token
        self.cacheFolder = cacheFolder
        self.cacheBudgetBytes = cacheBudgetBytes
    }
}

/// Fetches the store models tasks need into the cache: `GET /v1/models/{sha256}` into `<sha256>.partial` (its
/// sidecar config, sent in `X-Model-Config`, into `<sha256>.config.json`), resumed
/// with `Range: bytes=N-` after a cut connection, verified by SHA-256 at the end (a mismatch deletes the download
/// and starts again), a bounded number of attempts with backoff; then renamed into place and the cache trimmed to
/// its budget. Runs on the render thread, so the daemon's loop keeps heartbeats going during a long download.
public final class ModelFetcher: @unchecked Sendable {
    /// The server, token and cache.
    public let source: ModelSource
    /// The cache.
    public let cache: ModelCache
    /// Where downloads are reported.
    public var logger = Logger(label: "farm.worker.models")
    private let lock = NSLock()
    private var held: [String]
    /// Bytes downloaded since start, verified or not.
    public private(set) var fetchedBytes: Int64 = 0
    /// Models downloaded and verified since start.
    public private(set) var fetches = 0
    /// Downloads whose SHA-256 did not match (each deleted and tried again).
    public private(set) var verificationFailures = 0
    private let bytesCounter = Counter(label: "farm_worker_model_fetch_bytes_total")
    private let fetchCounter = Counter(label: "farm_worker_model_fetches_total")
    private let failureCounter = Counter(label: "farm_worker_model_verification_failures_total")

    /// A fetcher over `source`, its cache made if missing and trimmed to its budget.
    public init(source: ModelSource) throws {
        self.source = source
        cache = try ModelCache(folder: source.cacheFolder, budgetBytes: source.cacheBudgetBytes)
        cache.evict()
        held = cache.hashes
    }

    /// SHA-256s of the models in the cache, as last seen (what the worker announces).
    public var heldHashes: [String] { lock.withLock { held } }

    /// The file of model `hash` (named `name` in the task), downloaded first if the cache lacks it, and kept from
    /// eviction until `release(hash)`. Throws a host failure when it cannot be had: another worker may.
    public func acquire(_ hash: String, name: String, metadata: Logger.Metadata = [:]) throws -> URL {
        cache.retain(hash)
        do {
            if let url = cache.file(hash) { return url }
            let url = try download(hash, name: name, metadata: metadata)
            let removed = cache.evict()
            if !removed.isEmpty { logger.info("model cache over budget: evicted \(removed.map { $0.prefix(12) }.joined(separator: ", "))") }
            lock.withLock { held = cache.hashes }
            return url
        } catch {
            cache.release(hash)
            throw error
        }
    }

    /// Ends the use `acquire` began.
    public func release(_ hash: String) { cache.release(hash) }

    private func download(_ hash: String, name: String, metadata: Logger.Metadata) throws -> URL {
        let partial = cache.partial(hash)
        var wait = source.backoffSeconds
        var lastError = ""
        for attempt in 1...max(1, source.attempts) {
            if attempt > 1 {
                Thread.sleep(forTimeInterval: wait)
                wait *= 2
            }
            let started = ContinuousClock.now
            let transfer = ModelTransfer(url: source.server.appendingPathComponent("v1/models/\(hash)"), token: source.token, file: partial)
            transfer.logger = logger
            let outcome = transfer.run(label: "\(name) (\(hash.prefix(12))…)")
            lock.withLock { fetchedBytes += transfer.received }
            bytesCounter.increment(by: Int64(transfer.received))
            if let failure = outcome.failure {
                lastError = failure
                logger.warning("model \(name): download attempt \(attempt) stopped: \(failure)", metadata: metadata)
                if outcome.restart { try? FileManager.default.removeItem(at: partial) }
                continue
            }
            let actual = (try? SHA256.hex(ofFile: partial)) ?? ""
            guard actual == hash else {
                lock.withLock { verificationFailures += 1 }
                failureCounter.increment()
                lastError = "the bytes received hash to \(actual.prefix(12))…, not \(hash.prefix(12))…"
                logger.warning("model \(name): \(lastError); deleted, downloading again (attempt \(attempt))", metadata: metadata)
                try? FileManager.default.removeItem(at: partial)
                continue
            }
            // The sidecar goes in first, so that the model is never seen without the settings it needs.
            try cache.installSidecar(hash, base64: transfer.sidecar)
            let url = try cache.install(hash)
            lock.withLock { fetches += 1 }
            fetchCounter.increment()
            let seconds = started.duration(to: .now).seconds
            logger.info(
                "model \(name) fetched and verified: \(hash.prefix(12))…, \(transfer.total ?? transfer.received) bytes in \(String(format: "%.1f", seconds)) s",
                metadata: metadata)
            return url
        }
        throw RenderError(
            kind: .host,
            message:
                "model \(name) (\(hash.prefix(12))…) could not be fetched from \(source.server.absoluteString) in \(source.attempts) attempts: \(lastError)"
        )
    }
}

/// One HTTP download of a model into its `.partial` file, appending from the file's size with a Range request.
final class ModelTransfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let url: URL
    let token: String?
    let file: URL
    var logger = Logger(label: "farm.worker.models")
    private var handle: FileHandle?
    private let done = DispatchSemaphore(value: 0)
    private var failure: String?
    /// True when the partial file must go (the server ignored the Range, or the file is bad).
    private var restart = false
    /// Bytes written by this transfer.
    private(set) var received: Int64 = 0
    /// The whole model's size, once the answer said.
    private(set) var total: Int64?
    /// The model's sidecar config as the answer carried it (`X-Model-Config`, base64), nil when it has none.
    private(set) var sidecar: String?
    private var offset: Int64 = 0
    private var lastReport = ContinuousClock.now
    private var label = ""

    init(url: URL, token: String?, file: URL) {
        self.url = url
        self.token = token
        self.file = file
    }

    /// Downloads (or resumes) until the server's answer ends or fails; `failure` says what stopped it, `restart`
    /// whether the partial file is to be dropped.
    func run(label: String) -> (failure: String?, restart: Bool) {
        self.label = label
        offset = ((try? FileManager.default.attributesOfItem(atPath: file.path))?[.size] as? NSNumber)?.int64Value ?? 0
        var request = URLRequest(url: url)
        request.timeoutInterval = 60
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if offset > 0 { request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        let session = URLSession(configuration: .ephemeral, delegate: self, delegateQueue: nil)
        session.dataTask(with: request).resume()
        done.wait()
        session.finishTasksAndInvalidate()
        try? handle?.close()
        return (failure, restart)
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        let http = response as? HTTPURLResponse
        let status = http?.statusCode ?? 0
        switch status {
        case 200, 206:
            do {
                // The file is made only once bytes come: a refused request leaves nothing in the cache. A 200 is the
                // whole model, so what a partial file held goes.
                if status == 200 {
                    guard FileManager.default.createFile(atPath: file.path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
                    offset = 0
                }
                let handle = try FileHandle(forWritingTo: file)
                if status == 206 { try handle.seekToEnd() }
                self.handle = handle
                let length = Int64(http?.value(forHTTPHeaderField: "Content-Length") ?? "") ?? -1
                total = length >= 0 ? offset + length : nil
                sidecar = http?.value(forHTTPHeaderField: ModelRecord.configHeader)
                if status == 206 { logger.info("model \(label): resuming at byte \(offset)") }
                completionHandler(.allow)
            } catch {
                failure = "cannot write \(file.path): \(error)"
                completionHandler(.cancel)
            }
        case 416:
            // The partial file is as long as the model or longer: let the hash decide, and start over if it is wrong.
            failure = "the server has no bytes past \(offset); starting over"
            restart = true
            completionHandler(.cancel)
        default:
            failure = "HTTP \(status) from \(url.absoluteString)\(status == 401 || status == 403 ? " (check --model-token)" : "")"
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let handle else { return }
        do { try handle.write(contentsOf: data) } catch {
            failure = "cannot write \(file.path): \(error)"
            dataTask.cancel()
            return
        }
        received += Int64(data.count)
        if lastReport.duration(to: .now) > .seconds(5), let total {
            lastReport = .now
            let done = offset + received
            logger.info("model \(label): \(done >> 20) of \(total >> 20) MiB (\(done * 100 / max(total, 1)) %)")
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, failure == nil { failure = "\(error.localizedDescription)" }
        done.signal()
    }
}
