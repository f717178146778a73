import FarmModel
import Foundation
import Postgres

/// One numbered SQL file from `Migrations/`.
public struct Migration: Equatable, Sendable {
    /// The number in the file name (`0001_initial.sql` → 1).
    public var version: Int
    /// The file name.
    public var name: String
    /// The SQL text.
    public var sql: String

    /// SHA-256 of the SQL text, hex; an applied file whose text changed is an error.
    public var checksum: String { SHA256.hex(of: Data(sql.utf8)) }
}

/// Errors from applying migrations.
public enum MigrationError: Error, CustomStringConvertible, Equatable {
    /// No `Migrations/` folder could be found.
    case folderNotFound(searched: [String])
    /// A file name is not `NNNN_name.sql`, or two files share a number.
    case badFileName(String)
    /// An applied migration's file changed since it was applied.
    case checksumMismatch(version: Int, name: String)
    /// The database has a migration this build does not know (it is newer).
    case unknownApplied(version: Int)

    /// What went wrong and what to do, in one line.
    public var description: String {
        switch self {
        case .folderNotFound(let searched):
            return "no Migrations folder found (looked in \(searched.joined(separator: ", "))); set FARM_MIGRATIONS to its path"
        case .badFileName(let name):
            return "migration file \"\(name)\" must be named NNNN_name.sql with a unique number"
        case .checksumMismatch(let version, let name):
            return "migration \(version) (\(name)) was changed after it was applied; restore the file and add a new migration instead"
        case .unknownApplied(let version):
            return "the database has migration \(version), which this build does not know; upgrade this binary"
        }
    }
}

/// Applies `Migrations/NNNN_name.sql` files in order, each in its own transaction,
/// recording them in `schema_migrations`; an advisory lock keeps two coordinators
/// that start together from racing.
public struct Migrator {
    /// The migrations known to this build, in order.
    public let migrations: [Migration]

    /// Reads every `NNNN_name.sql` file of `folder`.
    public init(folder: URL) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        var seen = Set<Int>()
        migrations = try names.map { name in
            guard let underscore = name.firstIndex(of: "_"), let version = Int(name[..<underscore]),
                seen.insert(version).inserted
            else { throw MigrationError.badFileName(name) }
            let sql = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            return Migration(version: version, name: name, sql: sql)
        }
    }

    /// Finds the Migrations folder: `$FARM_MIGRATIONS`, then next to or above the
    /// running executable (a checkout or an installed `share/diffusionfarm`), then the current directory.
    public static func locateFolder(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        var candidates: [URL] = []
        if let path = environment["FARM_MIGRATIONS"] { candidates.append(URL(fileURLWithPath: path)) }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(directory.appendingPathComponent("Migrations"))
            candidates.append(directory.appendingPathComponent("share/diffusionfarm/Migrations"))
            directory.deleteLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Migrations"))
        for candidate in candidates {
            let marker = candidate.appendingPathComponent("0001_initial.sql").path
            if FileManager.default.fileExists(atPath: marker) { return candidate }
        }
        throw MigrationError.folderNotFound(searched: candidates.map(\.path))
    }

    /// Any number that identifies the farm's migration lock among advisory locks.
    static let lockKey: Int64 = 0x4446_4d49_4752  // "DFMIGR"

    /// Applies every migration not yet recorded; returns the versions it applied.
    @discardableResult
    public func apply(to connection: Connection) throws -> [Int] {
        try connection.query("SELECT pg_advisory_lock($1)", [Migrator.lockKey])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [Migrator.lockKey]) }
        try connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """)
        let applied = try connection.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        var appliedChecksums: [Int: String] = [:]
        for row in applied.rows {
            appliedChecksums[try row.decode("version")] = try row.decode("checksum", as: String.self)
        }
        let known = Set(migrations.map(\.version))
        if let unknown = appliedChecksums.keys.sorted().first(where: { !known.contains($0) }) {
            throw MigrationError.unknownApplied(version: unknown)
        }
        var done: [Int] = []
        for migration in migrations {
            if let checksum = appliedChecksums[migration.version] {
                guard checksum == migration.checksum else {
                    throw MigrationError.checksumMismatch(version: migration.version, name: migration.name)
                }
                continue
            }
            try connection.transaction { connection in
                try connection.execute(script: migration.sql)
                try connection.query(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    [migration.version, migration.name, migration.checksum])
            }
            done.append(migration.version)
        }
        return done
    }
}
