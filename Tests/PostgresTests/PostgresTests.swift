import Foundation
import Postgres
import TestSupport
import Testing

@Test func parameterizedQueryDecodesTypedRows() throws {
    let connection = try Connection(try TemporaryPostgres.shared.createDatabase())
    #expect(connection.serverVersion >= 120_000)
    try connection.query("CREATE TABLE things (id bigserial PRIMARY KEY, name text, weight double precision, ok boolean, blob bytea)")
    let bytes = Data([0, 1, 2, 0xFF, 0x5C, 0x27])
    let inserted = try connection.query(
        "INSERT INTO things (name, weight, ok, blob) VALUES ($1, $2, $3, $4), ($5, NULL, NULL, NULL) RETURNING id",
        ["o'brien; DROP TABLE things; --", 2.5, true, bytes, "second"])
    #expect(inserted.rows.count == 2)
    let rows = try connection.query("SELECT id, name, weight, ok, blob FROM things ORDER BY id").rows
    #expect(try rows[0].decode("name", as: String.self) == "o'brien; DROP TABLE things; --")
    #expect(try rows[0].decode("weight", as: Double.self) == 2.5)
    #expect(try rows[0].decode("ok", as: Bool.self) == true)
    #expect(try rows[0].decode("blob", as: Data.self) == bytes)
    #expect(try rows[1].decodeIfPresent("weight", as: Double.self) == nil)
    #expect(try rows[1].decode("id", as: Int64.self) == rows[0].decode("id", as: Int64.self) + 1)
    #expect(throws: PostgresError.self) { try rows[1].decode("weight", as: Double.self) }
    #expect(throws: PostgresError.self) { try rows[0].decode("missing", as: Int.self) }
}

@Test func serverErrorsCarrySQLState() throws {
    let connection = try Connection(try TemporaryPostgres.shared.createDatabase())
    try connection.query("CREATE TABLE u (k int PRIMARY KEY)")
    try connection.query("INSERT INTO u VALUES (1)")
    do {
        try connection.query("INSERT INTO u VALUES ($1)", [1])
        Issue.record("duplicate key was accepted")
    } catch let error as PostgresError {
        #expect(error.sqlState == "23505")
    }
    #expect(throws: PostgresError.self) { try connection.query("SELEC 1") }
}

@Test func transactionCommitsOrRollsBack() throws {
    let connection = try Connection(try TemporaryPostgres.shared.createDatabase())
    try connection.query("CREATE TABLE t (v int)")
    try connection.transaction { try $0.query("INSERT INTO t VALUES (1)") }
    struct Boom: Error {}
    #expect(throws: Boom.self) {
        try connection.transaction { connection in
            try connection.query("INSERT INTO t VALUES (2)")
            throw Boom()
        }
    }
    #expect(try connection.query("SELECT count(*) AS n FROM t").single().decode("n", as: Int.self) == 1)
}

@Test func listenReceivesNotifyFromAnotherConnection() throws {
    let conninfo = try TemporaryPostgres.shared.createDatabase()
    let listener = try Connection(conninfo)
    let sender = try Connection(conninfo)
    try listener.listen("farm_events")
    #expect(try listener.notifications(timeout: 0.05).isEmpty)
    try sender.notify("farm_events", payload: "job 42 done")
    let received = try listener.notifications(timeout: 5)
    #expect(received == [Notification(channel: "farm_events", payload: "job 42 done", senderPID: sender.backendPID)])
}

@Test func connectsWithURIAndWithEnvironmentVariables() throws {
    let server = TemporaryPostgres.shared
    _ = try server.createDatabase()
    let viaURI = try Connection("postgresql://farm@127.0.0.1:\(server.port)/postgres")
    #expect(try viaURI.query("SELECT current_user AS u").single().decode("u", as: String.self) == "farm")

    // The PG* variables apply when no connection string is given. No other test
    // connects without a connection string, so setting them here is safe.
    setenv("PGHOST", "127.0.0.1", 1)
    setenv("PGPORT", String(server.port), 1)
    setenv("PGUSER", "farm", 1)
    setenv("PGDATABASE", "postgres", 1)
    defer { for name: String in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"] { unsetenv(name) } }
    let viaEnvironment = try Connection()
    #expect(try viaEnvironment.query("SELECT current_database() AS d").single().decode("d", as: String.self) == "postgres")
    #expect(throws: PostgresError.self) { try Connection("host=127.0.0.1 port=1 connect_timeout=2") }
}

@Test func copyInStreamsRowsWithEscapes() throws {
    let connection = try Connection(try TemporaryPostgres.shared.createDatabase())
    try connection.query("CREATE TABLE c (i int, s text)")
    let values = ["plain", "tab\there", "new\nline", "back\\slash", "ünïcödé"]
    let rows = values.enumerated().map { "\($0.offset)\t\(Connection.copyEscape($0.element))" }
    #expect(try connection.copyIn("COPY c (i, s) FROM STDIN", rows: rows) == values.count)
    let stored = try connection.query("SELECT s FROM c ORDER BY i").rows.map { try $0.decode("s", as: String.self) }
    #expect(stored == values)
}
