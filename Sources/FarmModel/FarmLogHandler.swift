import Foundation
import Logging

/// The daemons' log handler: each event as one line of text (`time level label: message key=value …`)
/// or JSON (`{"time":…,"level":…,"label":…,"message":…,<metadata>}`), handed to `sink`
/// (`standardOutput` in the daemons, a collector in tests).
public struct FarmLogHandler: LogHandler {
    /// The logger's label (`farm.coordinator`), shown without its `farm.` prefix.
    let label: String
    /// JSON lines rather than text.
    let json: Bool
    /// Where each finished line goes (without its newline).
    let sink: @Sendable (String) -> Void
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// A handler for the logger labelled `label`.
    public init(label: String, json: Bool, logLevel: Logger.Level, sink: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.json = json
        self.logLevel = logLevel
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        if let error = event.error { merged["error"] = .string("\(error)") }
        let name = label.hasPrefix("farm.") ? String(label.dropFirst(5)) : label
        let line =
            json
            ? FarmLogHandler.jsonLine(time: Date(), level: event.level, label: name, message: "\(event.message)", metadata: merged)
            : FarmLogHandler.textLine(time: Date(), level: event.level, label: name, message: "\(event.message)", metadata: merged)
        sink(line)
    }

    /// Writes a line and its newline to standard output with one unbuffered `write`, so that lines
    /// from several threads never interleave and nothing is lost when the process is killed.
    public static func standardOutput(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    /// UTC, ISO 8601 with milliseconds; made with `gmtime_r` because a shared formatter object
    /// would be used from several threads at once.
    static func timestamp(_ time: Date) -> String {
        let seconds = time.timeIntervalSince1970
        var whole = time_t(seconds.rounded(.down))
        var parts = tm()
        gmtime_r(&whole, &parts)
        let millis = min(999, Int((seconds - seconds.rounded(.down)) * 1000))
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), millis)
    }

    /// `{"time":…,"level":…,"label":…,"message":…,<metadata>}`, keys after the first four sorted;
    /// integer and floating-point metadata stay numbers.
    static func jsonLine(time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var fields = [
            "\"time\":" + jsonString(timestamp(time)), "\"level\":" + jsonString(level.rawValue),
            "\"label\":" + jsonString(label), "\"message\":" + jsonString(message),
        ]
        for key in metadata.keys.sorted() where !["time", "level", "label", "message"].contains(key) {
            fields.append(jsonString(key) + ":" + jsonValue(metadata[key]!))
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// `time level label: message key=value …`, values with spaces quoted.
    static func textLine(time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var line = "\(timestamp(time)) \(level.rawValue) \(label): \(message)"
        for key in metadata.keys.sorted() {
            let value = "\(metadata[key]!)"
            line += " \(key)=" + (value.contains(" ") || value.isEmpty ? jsonString(value) : value)
        }
        return line
    }

    private static func jsonValue(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return jsonString(text)
        case .stringConvertible(let item):
            if item is any BinaryInteger { return item.description }
            if let number = item as? Double, number.isFinite { return item.description }
            return jsonString(item.description)
        case .array(let items): return "[" + items.map(jsonValue).joined(separator: ",") + "]"
        case .dictionary(let entries):
            return "{" + entries.keys.sorted().map { jsonString($0) + ":" + jsonValue(entries[$0]!) }.joined(separator: ",") + "}"
        }
    }

    /// A JSON string literal; control characters escaped so that a line stays one line.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
