// Shared by the HTTP API farm tests: running `farm`, one HTTP exchange, a coordinator with the API, an event-stream reader.
import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Runs `farm` (with `environment` instead of this process's, if given) and returns its exit
/// status, standard output and standard error.
func runFarmCapturing(_ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = farmBinary
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    // Read both pipes at once so that neither fills up and blocks the child.
    final class Box: @unchecked Sendable { var data = Data() }
    let errorBox = Box()
    let reader = Thread { errorBox.data = errors.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while reader.isExecuting || !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: errorBox.data, as: UTF8.self))
}

/// One HTTP exchange, synchronously.
func httpRequest(_ method: String, _ url: String, token: String? = nil, body: Data? = nil) throws
    -> (status: Int, contentType: String, body: Data)
{
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 60
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    request.httpBody = body
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
    if let error = outcome.error { throw error }
    let response = outcome.response as! HTTPURLResponse
    return (response.statusCode, response.value(forHTTPHeaderField: "Content-Type") ?? "", outcome.data ?? Data())
}

/// The parsed JSON object of a body.
func jsonObject(_ data: Data) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
}

/// A coordinator with the HTTP API on a free port, its database, and an admin and a submit token.
struct HTTPFarm {
    let conninfo: String
    let endpoint: String
    let server: String
    let coordinator: FarmProcess
    let admin: String
    let submit: String

    /// Starts it; `heartbeat` seconds between heartbeats, and `missedHeartbeats` of them before a worker is lost; `extra`
    /// are more coordinator flags.
    init(heartbeat: Double = 0.2, missedHeartbeats: Int = 10, extra: [String] = []) throws {
        let (database, zmq) = try farmDatabase()
        (conninfo, endpoint) = (database, zmq)
        let port = try TemporaryPostgres.freePort()
        server = "http://127.0.0.1:\(port)"
        coordinator = try FarmProcess(
            [
                "coordinator", "--insecure", "--database", database, "--listen", zmq, "--http", "127.0.0.1:\(port)",
                "--heartbeat", String(heartbeat), "--missed-heartbeats", String(missedHeartbeats),
            ] + extra, name: "http-coordinator")
        let created = try ["admin", "submit"].map { role in
            try runFarmCapturing(["tokens", "create", "--role", role, "--name", "test-\(role)", "--database", database])
        }
        admin = created[0].stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        submit = created[1].stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let statuses = created.map(\.status)
        let errors = created.map(\.stderr).joined()
        #expect(statuses == [0, 0], "\(errors)")
        let base = server
        let log = coordinator
        let up = waitFor(30) { ((try? httpRequest("GET", base + "/v1/jobs"))?.status ?? 0) == 401 }
        #expect(up, "\(log.output)")
    }
}

/// A raw HTTP/1.1 GET on a socket that collects the streamed body on a thread until `stop()`.
final class EventStreamReader: @unchecked Sendable {
    private let lock = NSLock()
    private var received = Data()
    private var ended = false
    private let fd: Int32

    /// True once the server closed the stream.
    var isClosed: Bool { lock.withLock { ended } }

    /// Opens `path` on 127.0.0.1:`port`, sending `token` as a bearer token.
    init(port: Int, path: String, token: String?) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        request += "\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 {
                    self.lock.withLock { self.ended = true }
                    break
                }
                self.lock.withLock { self.received.append(contentsOf: buffer[0..<n]) }
            }
        }.start()
    }

    /// Everything received so far, as text.
    var text: String { lock.withLock { String(decoding: received, as: UTF8.self) } }

    /// The `(event, data)` pairs received so far.
    var events: [(name: String, data: [String: Any])] {
        // Each event arrives in one HTTP chunk, so its lines are whole; chunk-size lines are skipped.
        var name: String?
        var found: [(name: String, data: [String: Any])] = []
        for line in text.replacingOccurrences(of: "\r", with: "").components(separatedBy: "\n") {
            if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
            if line.hasPrefix("data: "), let current = name {
                found.append((current, jsonObject(Data(line.dropFirst(6).utf8))))
                name = nil
            }
        }
        return found
    }

    /// Closes the connection.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
