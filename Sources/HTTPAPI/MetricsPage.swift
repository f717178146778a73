import CoreMetrics
import Foundation
import Hummingbird

extension APIResponder {
    /// `/metrics`: reads the database's figures (tasks by state, queue depth per model, workers
    /// by state) into gauges, then answers with every metric of the process in the Prometheus
    /// text format. Scrapers call it without a token; it shows counts and worker names only.
    func metricsPage() async throws -> Response {
        guard let metrics else { throw APIError(status: 404, "this server does not serve metrics") }
        let figures = try await pool.run { try $0.farmFigures() }
        for (state, count) in figures.tasks { Gauge(label: "farm_tasks", dimensions: [("state", state)]).record(count) }
        for (model, count) in figures.queuedByModel { Gauge(label: "farm_queue_depth", dimensions: [("model", model)]).record(count) }
        for (state, count) in figures.workers { Gauge(label: "farm_workers", dimensions: [("state", state)]).record(count) }
        return prometheusResponse(metrics())
    }
}

/// The Prometheus text format's response.
func prometheusResponse(_ text: String) -> Response {
    Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
}

/// Serves `/metrics` and nothing else: a worker's metrics port.
struct MetricsResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    /// The process's metrics in the Prometheus text format.
    let metrics: @Sendable () -> String

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .get || request.method == .head, request.uri.path == "/metrics" else {
            return Response(
                status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "only /metrics is served here\n")))
        }
        return prometheusResponse(metrics())
    }
}
