import FarmModel
import Foundation

/// An HTTP API failure: the status to answer with and a one-line message (and, for bad
/// specs, the field and line at fault). Its body is `{"error": …, "field": …, "line": …}`.
public struct APIError: Error, CustomStringConvertible, Sendable {
    /// The HTTP status code.
    public var status: Int
    /// What went wrong, in one line.
    public var message: String
    /// The request field at fault, when there is one.
    public var field: String?
    /// The spec line at fault, when known.
    public var line: Int?

    /// Makes an error.
    public init(status: Int, _ message: String, field: String? = nil, line: Int? = nil) {
        self.status = status
        self.message = message
        self.field = field
        self.line = line
    }

    /// The one-line message.
    public var description: String { message }

    /// The JSON body.
    var json: Data {
        (try? FarmAPI.encode(ErrorReply(error: message, field: field, line: line))) ?? Data("{\"error\":\"error\"}".utf8)
    }
}
