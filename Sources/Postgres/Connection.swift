// Module Postgres: the small Swift face on libpq (connections, parameters, results, COPY, LISTEN). Imports only
// CPostgres.

import CPostgres
import Foundation

/// An error from PostgreSQL or libpq, with the server's SQLSTATE where there is one.
public struct PostgresError: Error, CustomStringConvertible, Equatable {
    /// Five-character SQLSTATE (e.g. `23505` unique violation); empty for client-side errors.
    public var sqlState: String
    /// The primary message, one line.
    public var message: String

    /// Makes an error.
    public init(sqlState: String = "", message: String) {
        self.sqlState = sqlState
        self.message = message
    }

    public var description: String {
        sqlState.isEmpty ? "postgres: \(message)" : "postgres [\(sqlState)]: \(message)"
    }
}

/// A value that can travel as a query parameter.
public protocol PostgresBindable {
    /// The value in PostgreSQL's text input format, or raw bytes for bytea.
    var postgresParameter: PostgresParameter { get }
}

/// One encoded query parameter.
public enum PostgresParameter {
    /// Sent in text format; the server casts it to the column's type.
    case text(String)
    /// Sent in binary format (bytea).
    case binary(Data)
}

extension String: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(self) }
}
extension Int: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}
extension Int64: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}
extension Int32: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}
extension UInt64: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}
extension Double: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}
extension Bool: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(self ? "t" : "f") }
}
extension Data: PostgresBindable {
    public var postgresParameter: PostgresParameter { .binary(self) }
}

/// A notification received through LISTEN.
public struct Notification: Equatable, Sendable {
    /// The channel it was sent on.
    public var channel: String
    /// The payload string (may be empty).
    public var payload: String
    /// The backend process that sent it.
    public var senderPID: Int32

    /// Makes a notification (as received, or to compare against).
    public init(channel: String, payload: String, senderPID: Int32) {
        self.channel = channel
        self.payload = payload
        self.senderPID = senderPID
    }
}

/// One libpq connection. Not thread-safe: keep it on one thread (or behind one lock).
public final class Connection {
    private let handle: OpaquePointer
    /// What this connection was opened with, so that work can be spread over more connections to the same database.
    public let conninfo: String

    /// Connects with a libpq connection string (`host=… dbname=…`) or URI
    /// (`postgresql://…`). With nil or an empty string, libpq uses the standard
    /// PG* environment variables (PGHOST, PGPORT, PGDATABASE, PGUSER, …).
    public init(_ conninfo: String? = nil) throws {
        guard let handle = PQconnectdb(conninfo ?? "") else {
            throw PostgresError(message: "out of memory creating a connection")
        }
        self.handle = handle
        self.conninfo = conninfo ?? ""
        guard PQstatus(handle) == CONNECTION_OK else {
            // Every stored property is set, so deinit runs and calls PQfinish.
            let message = Connection.errorText(handle)
            throw PostgresError(message: "cannot connect: \(message)")
        }
        // Notices (e.g. "relation already exists, skipping") are not errors; keep them off stderr.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit {
        PQfinish(handle)
    }

    private static func errorText(_ handle: OpaquePointer) -> String {
        String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The server's version number (e.g. 150018).
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// The backend's process id (as `pg_backend_pid()` reports it).
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// The socket, for waiting on notifications with poll or a ZeroMQ poller.
    public var socket: Int32 { PQsocket(handle) }

    /// Runs one statement with `$1…$n` parameters and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresBindable?] = []) throws -> QueryResult {
        var texts: [UnsafeMutablePointer<CChar>?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        defer { for text in texts { free(text) } }
        for parameter in parameters {
            switch parameter?.postgresParameter {
            case nil:
                texts.append(nil)
                lengths.append(0)
                formats.append(0)
            case .text(let value):
                texts.append(strdup(value))
                lengths.append(0)
                formats.append(0)
            case .binary(let bytes):
                let buffer = malloc(max(bytes.count, 1))!.assumingMemoryBound(to: CChar.self)
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { memcpy(buffer, base, bytes.count) }
                }
                texts.append(buffer)
                lengths.append(Int32(bytes.count))
                formats.append(1)
            }
        }
        let result = texts.withUnsafeBufferPointer { values in
            values.withMemoryRebound(to: UnsafePointer<CChar>?.self) { constValues in
                PQexecParams(
                    handle, sql, Int32(parameters.count), nil, constValues.baseAddress,
                    lengths, formats, 0)
            }
        }
        return try QueryResult(checking: result, connection: handle)
    }

    /// Runs several statements separated by semicolons (no parameters), e.g. a migration file.
    public func execute(script sql: String) throws {
        _ = try QueryResult(checking: PQexec(handle, sql), connection: handle)
    }

    /// Runs `body` inside BEGIN … COMMIT; any thrown error rolls back and is rethrown.
    @discardableResult
    public func transaction<T>(_ body: (Connection) throws -> T) throws -> T {
        try query("BEGIN")
        do {
            let value = try body(self)
            try query("COMMIT")
            return value
        } catch {
            _ = try? query("ROLLBACK")
            throw error
        }
    }

    /// Subscribes this connection to a notification channel.
    public func listen(_ channel: String) throws {
        try query("LISTEN \(quoteIdentifier(channel))")
    }

    /// Sends a notification (delivered to listeners when the transaction commits).
    public func notify(_ channel: String, payload: String = "") throws {
        try query("SELECT pg_notify($1, $2)", [channel, payload])
    }

    /// Returns notifications that have arrived, waiting up to `timeout` seconds for the first.
    public func notifications(timeout: Double) throws -> [Notification] {
        var received = try drainNotifications()
        if !received.isEmpty { return received }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(max(0, timeout * 1000)))
        if ready > 0 {
            received = try drainNotifications()
        }
        return received
    }

    /// Reads whatever the socket holds and returns the notifications already parsed.
    public func drainNotifications() throws -> [Notification] {
        guard PQconsumeInput(handle) == 1 else {
            throw PostgresError(message: "connection lost: \(Connection.errorText(handle))")
        }
        var received: [Notification] = []
        while let raw = PQnotifies(handle) {
            let note = raw.pointee
            received.append(
                Notification(
                    channel: String(cString: note.relname),
                    payload: String(cString: note.extra), senderPID: note.be_pid))
            PQfreemem(raw)
        }
        return received
    }

    /// Streams rows into a table with COPY … FROM STDIN (text format); `rows` are
    /// already-escaped lines without the trailing newline. Returns the rows copied.
    @discardableResult
    public func copyIn(_ sql: String, rows: some Sequence<String>) throws -> Int {
        _ = try QueryResult(checking: PQexec(handle, sql), connection: handle, allowCopyIn: true)
        var buffer = Data()
        buffer.reserveCapacity(1 << 20)
        func flush() throws {
            guard !buffer.isEmpty else { return }
            let status = buffer.withUnsafeBytes {
                PQputCopyData(handle, $0.bindMemory(to: CChar.self).baseAddress, Int32($0.count))
            }
            buffer.removeAll(keepingCapacity: true)
            guard status == 1 else { throw PostgresError(message: "COPY failed: \(Connection.errorText(handle))") }
        }
        for row in rows {
            buffer.append(contentsOf: row.utf8)
            buffer.append(0x0A)
            if buffer.count >= 1 << 20 { try flush() }
        }
        try flush()
        guard PQputCopyEnd(handle, nil) == 1 else {
            throw PostgresError(message: "COPY failed: \(Connection.errorText(handle))")
        }
        var copied = 0
        while let result = PQgetResult(handle) {
            let checked = try QueryResult(checking: result, connection: handle)
            copied += checked.affectedRows
        }
        return copied
    }

    /// Quotes a name for use as an SQL identifier.
    public func quoteIdentifier(_ name: String) -> String {
        guard let quoted = PQescapeIdentifier(handle, name, name.utf8.count) else { return "\"\"" }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    /// Escapes one field for COPY's text format (backslash, tab, newline, carriage return).
    public static func copyEscape(_ value: String?) -> String {
        guard let value else { return "\\N" }
        var escaped = ""
        escaped.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\t": escaped += "\\t"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }
}
