import Logging
import TestSupport

/// A logger that drops everything, for in-process daemons whose lines a test does not read.
let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A logger whose lines (`message key=value …`, keys sorted) collect in `lines`.
func collectingLogger(into lines: ThreadSafeBox<[String]>) -> Logger {
    Logger(label: "test", factory: { _ in CollectingLogHandler(lines: lines) })
}

/// Keeps each event as one line of text for a test to search.
struct CollectingLogHandler: LogHandler {
    let lines: ThreadSafeBox<[String]>
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let line = ([event.message.description] + all.keys.sorted().map { "\($0)=\(all[$0]!)" }).joined(separator: " ")
        lines.mutate { $0.append(line) }
    }
}
