import Coordinator
import Foundation
@_spi(Testing) import JobStore
import Logging
import Postgres
import TestSupport
import ZeroMQ

/// A fresh database on `server` with the farm's migrations applied, and a connection to it.
func migratedDatabase(_ server: TemporaryPostgres = .shared) throws -> (conninfo: String, connection: Connection) {
    let conninfo = try server.createDatabase()
    let connection = try Connection(conninfo)
    try Migrator(folder: migrationsFolder).apply(to: connection)
    return (conninfo, connection)
}

/// An in-process coordinator over `conninfo` on a free local port (unless `settings` says otherwise), logging to
/// `logger`; the test drives it with `runOnce`.
func makeCoordinator(
    _ conninfo: String, settings: CoordinatorConfiguration = CoordinatorConfiguration(listen: "tcp://127.0.0.1:*"),
    context: ZMQContext = ZMQContext(), logger: Logger = quietLogger
) throws -> CoordinatorServer {
    let coordinator = try CoordinatorServer(configuration: settings, conninfo: conninfo, context: context)
    coordinator.logger = logger
    return coordinator
}

/// A new temporary folder holding the tiny test model as `tiny`, for a worker's models folder; the caller removes it.
func modelsFolderWithTinyModel() throws -> URL {
    let models = FileManager.default.temporaryDirectory.appendingPathComponent("models-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
    try FileManager.default.moveItem(at: try tinyModelWithFullVocabulary(), to: models.appendingPathComponent("tiny"))
    return models
}

/// The worker that rendered each done task of `job` (its `task.done` event), by task index.
func renderingWorkers(_ store: JobStore, job: Int64) throws -> [Int: String] {
    var result: [Int: String] = [:]
    let rows = try store.testConnection.query(
        "SELECT t.index, e.worker_id FROM tasks t JOIN events e ON e.task_id = t.id AND e.kind = 'task.done' WHERE t.job_id = $1", [job]
    ).rows
    for row in rows { result[try row.decode("index")] = try row.decode("worker_id") }
    return result
}
