import CPostgres
import Foundation

/// The rows of one statement, copied out of libpq so the result can be freed at once.
public struct QueryResult {
    /// Column names, in order.
    public let columns: [String]
    /// Each row's fields in text format (nil for NULL).
    public let rows: [Row]
    /// Rows inserted, updated or deleted (from the command tag).
    public let affectedRows: Int

    init(checking result: OpaquePointer?, connection: OpaquePointer, allowCopyIn: Bool = false) throws {
        guard let result else {
            throw PostgresError(
                message: String(cString: PQerrorMessage(connection))
                    .trimmingCharacters(in: .whitespacesAndNewlines))
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            break
        case PGRES_COPY_IN where allowCopyIn:
            columns = []
            rows = []
            affectedRows = 0
            return
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let primary =
                PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
                ?? String(cString: PQresultErrorMessage(result))
            throw PostgresError(sqlState: state, message: primary.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let columnCount = Int(PQnfields(result))
        let names = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var index: [String: Int] = [:]
        for (position, name) in names.enumerated() where index[name] == nil { index[name] = position }
        let lookup = ColumnIndex(positions: index, names: names)
        columns = names
        rows = (0..<Int(PQntuples(result))).map { row in
            let fields = (0..<columnCount).map { column -> String? in
                PQgetisnull(result, Int32(row), Int32(column)) == 1
                    ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            }
            return Row(fields: fields, index: lookup)
        }
        affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// The only row; throws unless there is exactly one.
    public func single() throws -> Row {
        guard rows.count == 1 else { throw PostgresError(message: "expected one row, got \(rows.count)") }
        return rows[0]
    }
}

final class ColumnIndex {
    let positions: [String: Int]
    let names: [String]

    init(positions: [String: Int], names: [String]) {
        self.positions = positions
        self.names = names
    }
}

/// A value that can be read from a text-format field.
public protocol PostgresDecodable {
    /// Parses the field; nil when it is not of this type.
    init?(postgresText text: String)
}

extension String: PostgresDecodable {
    public init?(postgresText text: String) { self = text }
}
extension Int: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}
extension Int64: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}
extension Int32: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}
extension UInt64: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}
extension Double: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}
extension Bool: PostgresDecodable {
    public init?(postgresText text: String) {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}
extension Data: PostgresDecodable {
    /// Parses bytea's hex output format (`\x0a1b…`).
    public init?(postgresText text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "\\"), bytes[1] == UInt8(ascii: "x"),
            bytes.count % 2 == 0
        else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var data = Data(capacity: (bytes.count - 2) / 2)
        var position = 2
        while position < bytes.count {
            guard let high = nibble(bytes[position]), let low = nibble(bytes[position + 1]) else { return nil }
            data.append(high << 4 | low)
            position += 2
        }
        self = data
    }
}

/// One row of a result; fields are read by column name or position with a type.
public struct Row {
    let fields: [String?]
    let index: ColumnIndex

    /// The raw text of a column (nil for NULL).
    public func text(_ column: String) throws -> String? {
        guard let position = index.positions[column] else {
            throw PostgresError(message: "no column \"\(column)\" in result (\(index.names.joined(separator: ", ")))")
        }
        return fields[position]
    }

    /// Decodes a non-NULL column as `T`.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let text = try self.text(column) else {
            throw PostgresError(message: "column \"\(column)\" is NULL, expected \(T.self)")
        }
        guard let value = T(postgresText: text) else {
            throw PostgresError(message: "column \"\(column)\" value \"\(text.prefix(40))\" is not a \(T.self)")
        }
        return value
    }

    /// Decodes a column that may be NULL.
    public func decodeIfPresent<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard try text(column) != nil else { return nil }
        return try decode(column, as: type)
    }
}
