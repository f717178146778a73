// Module HTTPAPI: the coordinator's JSON API and metrics page (Hummingbird). Imports JobStore, JobSpec, FarmModel
// and Postgres.

import FarmModel
import Foundation
import Hummingbird
import JobStore
import Logging

/// The HTTP server could not start.
public struct HTTPServerStartError: Error, CustomStringConvertible {
    /// Why, in one line.
    public var description: String
}

/// Serves `FarmAPI`'s router (the coordinator's JSON API under `/v1`, with bearer tokens from `api_tokens`, and
/// `/metrics`), or a worker's `/metrics` alone. It runs on Hummingbird's own event-loop threads; every libpq
/// call runs on a `DatabaseQueue`'s serial dispatch queue.
public final class FarmHTTPServer: @unchecked Sendable {
    /// The largest request body accepted (a job spec); larger ones get 413.
    public static let maxBodyBytes = FarmAPI.maxBodyBytes
    /// Host and port it listens on.
    public let host: String
    /// The TCP port.
    public let port: Int
    /// The API's routes; nil for a server of `/metrics` alone.
    private let api: FarmAPI?
    /// The process's metrics in the Prometheus text format.
    private let metrics: (@Sendable () -> String)?
    private var task: Task<Void, Never>?
    /// Where it logs.
    public var logger = Logger(label: "farm.http")

    /// Makes a server on `host:port` over the database at `conninfo`, streaming `events` at `/v1/events`;
    /// `metrics` gives the Prometheus text of the process's metrics for `/metrics` (nil: no `/metrics`); jobs
    /// submitted with a submit token may ask for priorities up to `maxSubmitPriority`; `modelStore` holds the model
    /// store's bytes.
    public init(
        host: String, port: Int, conninfo: String?, connections: Int = 4, events: FarmEvents = FarmEvents(),
        metrics: (@Sendable () -> String)? = nil, maxSubmitPriority: Int = 0, modelStore: ModelDirectory? = nil
    ) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.api = FarmAPI(
            conninfo: conninfo, connections: connections, events: events, metrics: metrics, maxSubmitPriority: maxSubmitPriority,
            modelStore: modelStore)
    }

    /// Makes a server of `/metrics` alone (a worker's), answering with `metrics()`.
    public init(metricsOn host: String, port: Int, metrics: @escaping @Sendable () -> String) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.api = nil
    }

    /// Parses `HOST:PORT` (`[::1]:8080` for IPv6) into its parts; nil when malformed.
    public static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Starts listening and returns once the socket is bound; throws if it cannot bind.
    /// The server then runs on its own threads until `stop()`.
    public func start() throws {
        if let api {
            try start(api.router(), what: "HTTP API", path: "/v1")
        } else if let metrics {
            try start(FarmAPI.metricsOnlyRouter(metrics: metrics), what: "metrics server", path: "/metrics")
        }
    }

    /// Runs `router` on a detached task; returns once it listens, or throws what stopped it first.
    private func start<Context: RequestContext>(_ router: Router<Context>, what: String, path: String) throws
    where Context.Source == ApplicationRequestContextSource {
        let started = DispatchSemaphore(value: 0)
        let outcome = StartOutcome()
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "DiffusionFarm"),
            onServerRunning: { _ in
                outcome.set(nil)
                started.signal()
            },
            logger: logger)
        let logger = self.logger
        let address = "\(host):\(port)"
        task = Task.detached {
            do {
                try await app.run()
            } catch {
                if outcome.set("\(error)") {
                    started.signal()
                } else {
                    logger.error("the \(what) on \(address) stopped", metadata: ["error": "\(error)"])
                }
            }
        }
        started.wait()
        if let failure = outcome.failure {
            throw HTTPServerStartError(description: "the \(what) cannot listen on \(address): \(failure)")
        }
        logger.info("\(what) listening on http://\(address)\(path)")
    }

    /// Stops the server.
    public func stop() {
        task?.cancel()
        task = nil
    }
}

/// The first outcome of starting: nil failure once running, or the error that stopped it first.
private final class StartOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var decided = false
    private(set) var failure: String?

    /// Records the outcome if none is recorded yet; returns whether this call recorded it.
    @discardableResult
    func set(_ failure: String?) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !decided else { return false }
        decided = true
        self.failure = failure
        return true
    }
}
