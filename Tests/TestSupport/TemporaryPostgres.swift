import Foundation
import Postgres

/// A throwaway PostgreSQL server for tests: `initdb` into a temporary folder,
/// started on a free 127.0.0.1 port, stopped (and its folder removed) when the
/// test process exits. As root it runs the server as the `postgres` system user,
/// since PostgreSQL refuses to run as root.
public final class TemporaryPostgres: @unchecked Sendable {
    /// The one server of this test process, started on first use.
    public static let shared: TemporaryPostgres = {
        do {
            return try TemporaryPostgres()
        } catch {
            fatalError("cannot start a throwaway PostgreSQL for the tests: \(error)")
        }
    }()

    /// The data and socket folder.
    public let directory: URL
    /// The TCP port on 127.0.0.1.
    public let port: Int
    private var server: Process
    private let serverCommand: (URL, [String])
    private let lock = NSLock()
    private var databases = 0

    /// Errors starting the server.
    public struct StartError: Error, CustomStringConvertible {
        /// What failed.
        public var message: String
        public var description: String { message }
    }

    /// Initialises and starts a new server; blocks until it accepts connections.
    public init() throws {
        TemporaryPostgres.sweepAbandoned()
        let binaries = try TemporaryPostgres.binDirectory()
        directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("farm-pg-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let asRoot = getuid() == 0
        if asRoot {
            try TemporaryPostgres.run("/bin/chown", ["postgres:postgres", directory.path])
        }
        let data = directory.appendingPathComponent("data").path
        try TemporaryPostgres.run(
            binaries + "/initdb",
            ["-D", data, "-U", "farm", "--auth=trust", "-E", "UTF8", "--no-sync", "-N"],
            asPostgresUser: asRoot)
        port = try TemporaryPostgres.freePort()
        let arguments = [
            "-D", data, "-p", String(port), "-k", directory.path, "-h", "127.0.0.1",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=300", "-c", "log_min_messages=warning",
        ]
        serverCommand = TemporaryPostgres.command(binaries + "/postgres", arguments, asPostgresUser: asRoot)
        server = Process()
        try launch()
    }

    private func launch() throws {
        server = Process()
        (server.executableURL, server.arguments) = serverCommand
        let log = FileHandle(forWritingAtPath: "/dev/null")
        server.standardOutput = log
        server.standardError = log
        try server.run()
        TemporaryPostgres.registerCleanup(pid: server.processIdentifier, folder: directory.path)
        let deadline = Date().addingTimeInterval(30)
        while true {
            if (try? Connection(conninfo(database: "postgres"))) != nil { break }
            guard server.isRunning, Date() < deadline else {
                throw StartError(message: "postgres did not accept connections on port \(port) within 30 s")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected) and starts it again on
    /// the same port and data, as an operator's restart would; `downtime` seconds between.
    public func restart(downtime: Double = 0) throws {
        kill(server.processIdentifier, SIGINT)
        // Polled on the kernel's state: Foundation notices exits by waiting on its children
        // one at a time, so with many children `waitUntilExit` can lag or hang.
        let stat = "/proc/\(server.processIdentifier)/stat"
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline,
            let text = try? String(contentsOfFile: stat, encoding: .utf8),
            let state = text.split(separator: ")").last?.split(separator: " ").first, state != "Z" && state != "X"
        {
            Thread.sleep(forTimeInterval: 0.01)
        }
        Thread.sleep(forTimeInterval: downtime)
        try launch()
    }

    /// A connection string for `database` on this server.
    public func conninfo(database: String) -> String {
        "host=127.0.0.1 port=\(port) user=farm dbname=\(database)"
    }

    /// Creates a fresh, empty database for one test and returns its connection string.
    public func createDatabase() throws -> String {
        let name: String = lock.withLock {
            databases += 1
            return "test_\(databases)"
        }
        let admin = try Connection(conninfo(database: "postgres"))
        try admin.query("CREATE DATABASE \(name)")
        return conninfo(database: name)
    }

    /// Stops the server now (it is also stopped when the process exits).
    public func stop() {
        if server.isRunning {
            kill(server.processIdentifier, SIGQUIT)
            server.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - Helpers

    private static func binDirectory() throws -> String {
        var candidates: [String] = []
        if let output = try? capture("/usr/bin/pg_config", ["--bindir"]) {
            candidates.append(output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        candidates += versions.sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        for candidate in candidates
        where FileManager.default.isExecutableFile(atPath: candidate + "/postgres")
            && FileManager.default.isExecutableFile(atPath: candidate + "/initdb")
        {
            return candidate
        }
        throw StartError(message: "no PostgreSQL server binaries found (looked in \(candidates)); install postgresql")
    }

    private static func command(_ executable: String, _ arguments: [String], asPostgresUser: Bool) -> (URL, [String]) {
        if asPostgresUser {
            // setpriv execs in place (unlike su/runuser), so the pid we hold is the server's own.
            return (
                URL(fileURLWithPath: "/usr/bin/setpriv"),
                ["--reuid=postgres", "--regid=postgres", "--clear-groups", "--", executable] + arguments
            )
        }
        return (URL(fileURLWithPath: executable), arguments)
    }

    private static func run(_ executable: String, _ arguments: [String], asPostgresUser: Bool = false) throws {
        let process = Process()
        (process.executableURL, process.arguments) = command(executable, arguments, asPostgresUser: asPostgresUser)
        let errors = Pipe()
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw StartError(message: "\(executable) failed: \(String(decoding: output, as: UTF8.self))")
        }
    }

    private static func capture(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// Asks the kernel for a free TCP port on 127.0.0.1.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(message: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw StartError(message: "cannot bind a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Stops a server and waits (up to 5 s) for it to go before removing its folder.
    private static func stopServer(pid: Int32, folder: String) {
        kill(pid, SIGQUIT)
        var status: Int32 = 0
        for _ in 0..<250 where kill(pid, 0) == 0 {
            _ = waitpid(pid, &status, WNOHANG)
            usleep(20_000)
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Removes servers left behind by test processes that crashed (their folder
    /// names carry the test process's pid).
    private static func sweepAbandoned() {
        let temporary = NSTemporaryDirectory()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? []
        for name in names where name.hasPrefix("farm-pg-") {
            let parts = name.split(separator: "-")
            guard parts.count >= 3, let owner = Int32(parts[2]), kill(owner, 0) != 0 else { continue }
            let folder = (temporary as NSString).appendingPathComponent(name)
            let pidFile = (folder as NSString).appendingPathComponent("data/postmaster.pid")
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let line = text.split(separator: "\n").first, let pid = Int32(line)
            {
                stopServer(pid: pid, folder: folder)
            } else {
                try? FileManager.default.removeItem(atPath: folder)
            }
        }
    }

    nonisolated(unsafe) private static var cleanups: [(pid: Int32, folder: String)] = []
    nonisolated(unsafe) private static var cleanupRegistered = false

    private static let cleanupLock = NSLock()

    private static func registerCleanup(pid: Int32, folder: String) {
        cleanupLock.withLock {
            cleanups.removeAll { $0.folder == folder }
            if cleanupRegistered == false {
                cleanupRegistered = true
                atexit {
                    for entry in TemporaryPostgres.cleanups {
                        // SIGQUIT: immediate shutdown; the data is thrown away anyway.
                        TemporaryPostgres.stopServer(pid: entry.pid, folder: entry.folder)
                    }
                }
            }
            cleanups.append((pid, folder))
        }
    }
}
