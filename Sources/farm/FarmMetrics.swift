import CoreMetrics
import Prometheus

/// The process's metrics backend: swift-metrics into a Prometheus registry.
enum FarmMetrics {
    /// Bootstraps swift-metrics with the Prometheus backend (once per process) and returns what
    /// renders its text format. Latency histograms get buckets from a millisecond to ten minutes (a large render).
    static func bootstrap() -> @Sendable () -> String {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
            .map { Duration.milliseconds(Int64($0 * 1000)) }
        MetricsSystem.bootstrap(factory)
        return { registry.emitToString() }
    }
}
