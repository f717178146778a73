import ArgumentParser
import FarmModel
import Foundation
import Logging

/// How the daemons' log lines look.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    /// Text on a terminal, JSON lines otherwise (journald, a file, a container's log driver).
    case auto
    /// `2026-11-27T21:53:31.123Z info coordinator: task stored task=12 job=3 worker=w1 attempt=1`.
    case text
    /// One JSON object per line: time, level, label, message and every metadata key.
    case json
}

// swift-format-ignore: AvoidRetroactiveConformances
// ArgumentParser parses log levels from their names; neither module declares it, so this one does.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The options every daemon has for its log; they are settings (`FARM_LOG_FORMAT`, `log-level:`).
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log lines as text, json (one object per line) or auto: text on a terminal, JSON lines otherwise.")
    var logFormat: LogFormat = .auto

    @Option(help: "The least severe level logged: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    /// Sends every logger of the process (the daemons' and the libraries') to standard output in
    /// the chosen format. Once per process.
    func bootstrap() {
        let json = logFormat == .json || (logFormat == .auto && isatty(STDOUT_FILENO) == 0)
        let level = logLevel
        LoggingSystem.bootstrap { label in FarmLogHandler(label: label, json: json, logLevel: level, sink: FarmLogHandler.standardOutput) }
    }
}
