import CoreMetrics
import Foundation
import Hummingbird

extension FarmAPI {
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

    /// The router of a worker's metrics port: `GET` (or `HEAD`) `/metrics` and nothing else.
    static func metricsOnlyRouter(metrics: @escaping @Sendable () -> String) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: NoSniffMiddleware())
        router.add(middleware: MetricsOnlyNotFound())
        router.get("metrics") { _, _ in prometheusResponse(metrics()) }
        router.head("metrics") { _, _ in prometheusResponse(metrics()) }
        return router
    }
}

/// The Prometheus text format's response.
func prometheusResponse(_ text: String) -> Response {
    Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
}

/// A worker's metrics port answers any other request with a plain-text 404.
struct MetricsOnlyNotFound: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            return Response(
                status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "only /metrics is served here\n")))
        }
    }
}
