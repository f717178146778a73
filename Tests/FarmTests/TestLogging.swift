import FarmModel
import Foundation
import Logging
import TestSupport
import Testing
import Worker
import ZeroMQ

/// A logger that drops everything, for in-process daemons whose lines a test does not read.
let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A logger whose lines, in the daemons' text format (`… message key=value …`), collect in `lines`.
func collectingLogger(into lines: ThreadSafeBox<[String]>) -> Logger {
    Logger(
        label: "test",
        factory: { label in
            FarmLogHandler(label: label, json: false, logLevel: .trace, sink: { line in lines.mutate { $0.append(line) } })
        })
}

/// Runs a worker daemon, quiet, on a thread of its own until `stop` is set, then calls `finished`. A daemon that
/// cannot start or stops with an error is a test issue, unless `onError` takes the error.
func startWorkerThread(
    _ configuration: WorkerConfiguration, context: ZMQContext = ZMQContext(), tick: Double = 0.05, stop: ThreadSafeBox<Bool>,
    renderer: @escaping () throws -> Renderer = { TestPatternRenderer() }, onError: ((Error) -> Void)? = nil,
    finished: @escaping () -> Void = {}
) {
    Thread {
        do {
            let worker = try WorkerDaemon(configuration: configuration, renderer: try renderer(), context: context)
            worker.logger = quietLogger
            try worker.run(tick: tick) { stop.value }
        } catch {
            if let onError { onError(error) } else { Issue.record("worker \(configuration.workerID) failed: \(error)") }
        }
        finished()
    }.start()
}
