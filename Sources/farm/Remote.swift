import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A failure answered by (or on the way to) the coordinator's HTTP API; `farm` prints it in one
/// line and exits 2 for bad input (4xx) and 1 for anything else.
struct RemoteError: Error, CustomStringConvertible {
    /// The error from the JSON body, or what kept the request from being answered.
    var message: String
    /// The HTTP status, when one came back.
    var status: Int?

    /// The one-line message.
    var description: String { message }

    /// 2 for the caller's mistakes (4xx), 1 for failures of the operation.
    var exitCode: Int32 { (status.map { (400..<500).contains($0) } ?? false) ? 2 : 1 }
}

/// `--server URL --token T` (or `FARM_SERVER` / `FARM_TOKEN`): talk to a coordinator's HTTP API
/// instead of the database.
struct RemoteOptions: ParsableArguments {
    @Option(help: "The coordinator's HTTP API (http://HOST:PORT); default FARM_SERVER. Without it, the command uses the database.")
    var server: String?

    @Option(help: "An API token (farm tokens create); default FARM_TOKEN.")
    var token: String?

    /// A client when a server is given (by flag or environment).
    func client() throws -> FarmClient? {
        let environment = ProcessInfo.processInfo.environment
        guard let text = server ?? environment["FARM_SERVER"], !text.isEmpty else { return nil }
        guard let url = URL(string: text.hasSuffix("/") ? String(text.dropLast()) : text), url.scheme == "http" || url.scheme == "https",
              url.host != nil else {
            throw ValidationError("--server must be an http(s) URL such as http://127.0.0.1:8080, got \(text)")
        }
        return FarmClient(base: url, token: token ?? environment["FARM_TOKEN"])
    }
}

/// A small synchronous client of the HTTP API (URLSession, waited on with a semaphore).
struct FarmClient {
    /// The server's base URL, without `/v1`.
    var base: URL
    /// The bearer token, if any.
    var token: String?

    /// Sends a request to `/v1/<path>` and returns the body of a 2xx answer; throws `RemoteError` otherwise.
    func send(_ method: String, _ path: String, query: [URLQueryItem] = [], body: Data? = nil) throws -> Data {
        var components = URLComponents(url: base.appendingPathComponent("v1/" + path), resolvingAgainstBaseURL: false)!
        if !query.isEmpty { components.queryItems = query }
        var request = URLRequest(url: components.url!)
        request.httpMethod = method
        request.timeoutInterval = 120
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = body
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        }
        final class Outcome: @unchecked Sendable {
            var data: Data?
            var response: URLResponse?
            var error: Error?
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, error in
            outcome.data = data
            outcome.response = response
            outcome.error = error
            done.signal()
        }.resume()
        done.wait()
        if let error = outcome.error {
            throw RemoteError(message: "\(base.absoluteString): \(error.localizedDescription)")
        }
        let status = (outcome.response as? HTTPURLResponse)?.statusCode ?? 0
        let data = outcome.data ?? Data()
        guard (200..<300).contains(status) else {
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            let message = object?["error"] as? String ?? "HTTP \(status) from \(components.url!.absoluteString)"
            throw RemoteError(message: message, status: status)
        }
        return data
    }

    /// Sends a request and parses the JSON answer.
    func json(_ method: String, _ path: String, query: [URLQueryItem] = [], body: Data? = nil) throws -> Any {
        let data = try send(method, path, query: query, body: body)
        do { return try JSONSerialization.jsonObject(with: data) } catch {
            throw RemoteError(message: "the server's answer to \(method) /v1/\(path) is not JSON")
        }
    }
}

/// The value as JSON text and back, so that both paths (database, HTTP) print identical JSON.
func jsonRoundTrip(_ value: Any) throws -> Any {
    try JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]))
}

/// An integer from a parsed JSON value (Int, or NSNumber after a round trip).
func intValue(_ value: Any?) -> Int {
    if let value = value as? Int { return value }
    if let value = value as? NSNumber { return value.intValue }
    return 0
}
