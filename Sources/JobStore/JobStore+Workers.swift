import FarmModel
import Foundation

/// The workers table: hellos, heartbeats and the operator's states.
extension JobStore {
    /// Records a worker's hello (or refreshes it after a reconnect) and returns its operator state (`online`, or
    /// the `cordoned`/`draining` it had before it dropped out). With CURVE the name is bound to the first key that
    /// used it: a hello from another key changes nothing and returns nil.
    public func registerWorker(_ hello: WireMessage.Hello, publicKey: String? = nil) throws -> WorkerStatus? {
        let row = try connection.query(
            """
            INSERT INTO workers (id, host, models, slots, max_pixels, state, last_heartbeat, device, public_key)
            VALUES ($1, $2, $3::text[], $4, $5, 'online', now(), $6, $7)
            ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, models = EXCLUDED.models, slots = EXCLUDED.slots,
                max_pixels = EXCLUDED.max_pixels, last_heartbeat = now(), device = EXCLUDED.device,
                public_key = coalesce(workers.public_key, EXCLUDED.public_key),
                state = CASE WHEN workers.state IN ('cordoned', 'draining') THEN workers.state ELSE 'online' END
            WHERE workers.public_key IS NULL OR EXCLUDED.public_key IS NULL OR workers.public_key = EXCLUDED.public_key
            RETURNING state
            """,
            [
                hello.workerID, hello.host, postgresArray(hello.models), hello.slots, hello.maxPixels ?? Limits().maxPixels,
                hello.device?.summary ?? "", publicKey,
            ]
        ).rows.first
        // What its model cache holds now, for `farm models list` (a worker without a cache holds none).
        if row != nil { try setWorkerModels(hello.workerID, hashes: hello.modelHashes ?? []) }
        return try row.map { try WorkerStatus(databaseValue: $0.decode("state", as: String.self)) }
    }

    /// Sets an operator's state on a worker: `draining` (finish what it holds, take no more),
    /// `cordoned` (take no more, stay connected) or `online`. Returns false for an unknown worker.
    @discardableResult
    public func setWorkerState(_ workerID: String, _ state: WorkerStatus) throws -> Bool {
        precondition(state.isOperatorState, "operator states are online, draining and cordoned")
        return try connection.query("UPDATE workers SET state = $2 WHERE id = $1", [workerID, state.rawValue]).affectedRows == 1
    }

    /// The operator's states of the given workers.
    public func workerStates(_ workerIDs: [String]) throws -> [String: WorkerStatus] {
        var states: [String: WorkerStatus] = [:]
        for row in try connection.query("SELECT id, state FROM workers WHERE id = ANY($1::text[])", [postgresArray(workerIDs)]).rows {
            states[try row.decode("id")] = try WorkerStatus(databaseValue: row.decode("state", as: String.self))
        }
        return states
    }

    /// Notes that a worker is alive, and the model it holds now when its heartbeat says.
    public func touchWorker(_ workerID: String, loadedModel: String? = nil, modelHashes: [String]? = nil) throws {
        try connection.query(
            "UPDATE workers SET last_heartbeat = now(), loaded_model = coalesce($2, loaded_model) WHERE id = $1",
            [workerID, loadedModel])
        if let modelHashes { try setWorkerModels(workerID, hashes: modelHashes) }
    }

    /// Requeues every task leased by a worker that was declared lost.
    @discardableResult
    public func requeueWorker(_ workerID: String) throws -> Int {
        // An operator's cordon or drain outlives the dropout: it is restored when the worker rejoins.
        try connection.query(
            """
            UPDATE workers SET state = CASE WHEN state IN ('cordoned', 'draining') THEN state ELSE 'lost' END WHERE id = $1
            """, [workerID])
        return try requeue(where: "t.lease_owner = $1", reason: "'worker ' || t.lease_owner || ' lost'", parameters: [workerID])
    }

    /// Puts tasks claimed for a worker that left before they could be sent back in the queue (an attempt is spent,
    /// as for a lost worker); returns how many.
    @discardableResult
    public func releaseUnsent(_ taskIDs: [Int64], workerID: String) throws -> Int {
        let list = "{" + taskIDs.map(String.init).joined(separator: ",") + "}"
        return try requeue(
            where: "t.id = ANY($1::bigint[]) AND t.lease_owner = $2",
            reason: "'worker ' || t.lease_owner || ' left before its assignment was sent'", parameters: [list, workerID])
    }

    /// One round trip to the database, for the coordinator's latency figure.
    public func ping() throws {
        try connection.query("SELECT 1")
    }
}
