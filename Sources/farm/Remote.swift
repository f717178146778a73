import ArgumentParser
import FarmModel
import Foundation
import JobStore
import Yams

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

/// `--server URL --token T` (or `FARM_SERVER` / `FARM_TOKEN`, or the config file): talk to a
/// coordinator's HTTP API instead of the database.
struct RemoteOptions: ParsableArguments {
    @Option(
        help: "The coordinator's HTTP API (http://HOST:PORT); default FARM_SERVER, then the config file. Without it, the command uses the database.")
    var server: String?

    @Option(help: "An API token (farm tokens create); default FARM_TOKEN, then the config file.")
    var token: String?

    /// A client when a server is given (by flag, environment or config file, in that order).
    func client() throws -> FarmClient? {
        let environment = ProcessInfo.processInfo.environment
        let config = try FarmConfig.load(environment: environment)
        guard let text = server ?? environment["FARM_SERVER"] ?? config.server, !text.isEmpty else { return nil }
        guard let url = URL(string: text.hasSuffix("/") ? String(text.dropLast()) : text), url.scheme == "http" || url.scheme == "https",
            url.host != nil
        else {
            throw ValidationError("--server must be an http(s) URL such as http://127.0.0.1:8080, got \(text)")
        }
        return FarmClient(base: url, token: token ?? environment["FARM_TOKEN"] ?? config.token)
    }

    /// What `method path` answers from the HTTP API when a server is given, else what `local` reads from the
    /// database; a nil local answer is the error `missing` (the API answers 404 with its own line).
    func ask<Answer: Decodable>(
        _ type: Answer.Type, _ path: String, method: String = "GET", database: DatabaseOptions, missing: @autoclosure () -> String = "",
        local: (JobStore) throws -> Answer?
    ) throws -> Answer {
        if let client = try client() { return try client.json(type, method, path) }
        guard let answer = try local(JobStore(connection: try database.connect())) else { throw ValidationError(missing()) }
        return answer
    }
}

/// The CLI's config file: YAML with `server: URL` and `token: T`, read from `FARM_CLI_CONFIG`, else
/// `$XDG_CONFIG_HOME/farm/config`, else `~/.config/farm/config`. (`FARM_CONFIG` names the daemons' settings
/// file, whose keys are others: the two never read each other's file.)
struct FarmConfig {
    /// The coordinator's HTTP API.
    var server: String?
    /// An API token.
    var token: String?

    /// The config file of this environment; none (and no error) when the default file is absent.
    static func load(environment: [String: String]) throws -> FarmConfig {
        let path: String
        if let explicit = environment["FARM_CLI_CONFIG"], !explicit.isEmpty {
            path = explicit
            // A file named on purpose must exist; the default one is optional.
            guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("FARM_CLI_CONFIG: \(path) does not exist") }
        } else {
            let home = environment["HOME"] ?? NSHomeDirectory()
            let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
            path = base + "/farm/config"
            guard FileManager.default.fileExists(atPath: path) else { return FarmConfig() }
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("\(path): cannot be read as UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// Parses the file's YAML; an unknown key or a value that is not text is an error naming its line.
    static func parse(_ text: String, path: String) throws -> FarmConfig {
        let document: Node?
        do { document = try Yams.compose(yaml: text) } catch {
            throw ValidationError("\(path): not valid YAML (\("\(error)".split(separator: "\n").first ?? "")); expected `server: URL` and `token: T`")
        }
        var config = FarmConfig()
        guard let document else { return config }
        guard let mapping = document.mapping else { throw ValidationError("\(path): expected `server: URL` and `token: T`") }
        for (keyNode, valueNode) in mapping {
            let line = (keyNode.mark?.line).map { ":\($0)" } ?? ""
            guard let key = keyNode.string, let value = valueNode.string else {
                throw ValidationError("\(path)\(line): expected `server: URL` or `token: T`")
            }
            switch key {
            case "server": config.server = value
            case "token": config.token = value
            default: throw ValidationError("\(path)\(line): unknown key \"\(key)\" (known: server, token)")
            }
        }
        return config
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
        var request = request(method, path, query: query, timeout: 120)
        if let body {
            request.httpBody = body
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        }
        return try perform(request) { URLSession.shared.dataTask(with: request, completionHandler: $0) }
    }

    /// Streams `file` as the body of `PUT /v1/<path>` (never read into memory) and returns the body of a 2xx answer.
    func upload(_ path: String, file: URL, query: [URLQueryItem] = [], headers: [String: String] = [:]) throws -> Data {
        // Longer than `send`'s: a model of several GB takes minutes on a slow link.
        var request = request("PUT", path, query: query, timeout: 600)
        request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        return try perform(request) { URLSession.shared.uploadTask(with: request, fromFile: file, completionHandler: $0) }
    }

    /// The request for `method /v1/<path>?query`, with the token; the caller adds the body.
    private func request(_ method: String, _ path: String, query: [URLQueryItem], timeout: TimeInterval) -> URLRequest {
        var components = URLComponents(url: base.appendingPathComponent("v1/" + path), resolvingAgainstBaseURL: false)!
        if !query.isEmpty { components.queryItems = query }
        var request = URLRequest(url: components.url!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return request
    }

    /// Starts the task `start` makes with the given completion handler, waits for it, and returns the body of a 2xx
    /// answer; throws `RemoteError` (the API's own error line when the body has one) for no answer or any other status.
    private func perform(
        _ request: URLRequest, start: (@escaping @Sendable (Data?, URLResponse?, (any Error)?) -> Void) -> URLSessionTask
    ) throws -> Data {
        final class Outcome: @unchecked Sendable {
            var data: Data?
            var response: URLResponse?
            var error: Error?
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        start { data, response, error in
            outcome.data = data
            outcome.response = response
            outcome.error = error
            done.signal()
        }.resume()
        done.wait()
        if let error = outcome.error { throw RemoteError(message: "\(base.absoluteString): \(error.localizedDescription)") }
        let status = (outcome.response as? HTTPURLResponse)?.statusCode ?? 0
        let data = outcome.data ?? Data()
        guard (200..<300).contains(status) else {
            let message = (try? JSONDecoder().decode(ErrorReply.self, from: data))?.error ?? "HTTP \(status) from \(request.url!.absoluteString)"
            throw RemoteError(message: message, status: status)
        }
        return data
    }

    /// Sends a request and decodes its JSON answer as `type`.
    func json<Value: Decodable>(
        _ type: Value.Type, _ method: String, _ path: String, query: [URLQueryItem] = [], body: Data? = nil
    ) throws -> Value {
        let data = try send(method, path, query: query, body: body)
        do { return try JSONDecoder().decode(type, from: data) } catch {
            throw RemoteError(message: "the server's answer to \(method) /v1/\(path) is not the JSON expected (\(error))")
        }
    }
}
