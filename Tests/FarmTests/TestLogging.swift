import FarmModel
import Logging
import TestSupport

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
