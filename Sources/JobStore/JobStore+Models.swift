import FarmModel
import Foundation
import Postgres

/// The model store's metadata (`models`) and which workers hold which model (`worker_models`).
extension JobStore {
    /// Adds `name` as the model with SHA-256 `sha256` (its bytes already in the `ModelDirectory`) and its sidecar
    /// `config` (a checkpoint's `<name>.config.json`, nil for none), or points an existing name at new ones; returns
    /// its record.
    @discardableResult
    public func addModel(name: String, kind: String, sha256: String, size: Int64, config: String? = nil) throws -> ModelRecord {
        guard !name.isEmpty, name.utf8.count <= Limits().maxNameBytes, !name.contains("/"),
            !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw ValidationFailure(field: "name", message: "a model name is 1…\(Limits().maxNameBytes) bytes without slashes or control characters")
        }
        guard ModelRecord.kinds.contains(kind) else {
            throw ValidationFailure(field: "kind", message: "must be one of \(ModelRecord.kinds.joined(separator: ", ")), got \(kind)")
        }
        guard TaskParameters.isStoredImageName(sha256) else { throw ValidationFailure(field: "sha256", message: "must be 64 lowercase hex digits") }
        if let config { try Self.validateSidecar(config) }
        try connection.query(
            """
            INSERT INTO models (name, kind, sha256, size, config) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, sha256 = EXCLUDED.sha256, size = EXCLUDED.size,
                                             config = EXCLUDED.config, added_at = now()
            """, [name, kind, sha256, size, config])
        guard let record = try models(named: name).first else { throw ValidationFailure(field: "name", message: "\(name) vanished while added") }
        return record
    }

    /// Every stored model (or the one named `name`), by name, with the workers that hold it.
    public func models(named name: String? = nil) throws -> [ModelRecord] {
        try connection.query(
            """
            SELECT m.name, m.kind, m.size, m.sha256, m.added_at::text AS added, m.config IS NOT NULL AS has_config,
                   array_to_string(ARRAY(SELECT w.worker_id FROM worker_models w WHERE w.sha256 = m.sha256 ORDER BY 1), E'\\n') AS holders
            FROM models m WHERE $1::text IS NULL OR m.name = $1 ORDER BY m.name
            """, [name]
        ).rows.map { row in
            let holders: String = try row.decode("holders")
            return ModelRecord(
                name: try row.decode("name"), kind: try row.decode("kind"), size: try row.decode("size"), sha256: try row.decode("sha256"),
                added: try row.decode("added"), holders: holders.split(separator: "\n").map(String.init), hasConfig: try row.decode("has_config"))
        }
    }

    /// Whether some stored model has SHA-256 `sha256` (the fetch route serves only those).
    public func isStoredModel(sha256: String) throws -> Bool {
        try !connection.query("SELECT 1 FROM models WHERE sha256 = $1 LIMIT 1", [sha256]).rows.isEmpty
    }

    /// The sidecar config stored with the model of SHA-256 `sha256` (nil: none), which the fetch route sends with the
    /// bytes. Names sharing the bytes normally share the sidecar; should they differ, the latest added wins.
    public func modelSidecar(sha256: String) throws -> String? {
        try connection.query(
            "SELECT config FROM models WHERE sha256 = $1 AND config IS NOT NULL ORDER BY added_at DESC LIMIT 1", [sha256]
        ).rows.first?.decode("config")
    }

    /// Refuses a sidecar that is not a JSON object of at most 64 KiB, which the engine could not read.
    public static func validateSidecar(_ config: String) throws {
        guard config.utf8.count <= 65536 else {
            throw ValidationFailure(field: "config", message: "a sidecar config is at most 64 KiB; is \(config.utf8.count) bytes the right file?")
        }
        guard (try? JSONSerialization.jsonObject(with: Data(config.utf8))) is [String: Any] else {
            throw ValidationFailure(field: "config", message: "the sidecar config must be a JSON object, as `<name>.config.json` is")
        }
    }

    /// Removes the model `name`; returns its SHA-256 and whether another name still uses those bytes (nil: no such
    /// model). The caller deletes the file when none does.
    public func removeModel(named name: String) throws -> (sha256: String, stillUsed: Bool)? {
        try connection.transaction { connection in
            guard let row = try connection.query("DELETE FROM models WHERE name = $1 RETURNING sha256", [name]).rows.first else { return nil }
            let sha256: String = try row.decode("sha256")
            let used = try !connection.query("SELECT 1 FROM models WHERE sha256 = $1 LIMIT 1", [sha256]).rows.isEmpty
            return (sha256, used)
        }
    }

    /// Stored models' SHA-256s by name, for those of `names` in the store (all of them when `names` is nil).
    public func storedModelHashes(names: [String]? = nil) throws -> [String: String] {
        var hashes: [String: String] = [:]
        for row in try connection.query(
            "SELECT name, sha256 FROM models WHERE $1::text[] IS NULL OR name = ANY($1::text[])", [names.map(postgresArray)]
        ).rows {
            hashes[try row.decode("name")] = try row.decode("sha256")
        }
        return hashes
    }

    /// Stored models' kinds and SHA-256s by name, for those of `names` in the store (all of them when `names` is nil).
    public func storedModels(names: [String]? = nil) throws -> [String: (kind: String, sha256: String)] {
        var models: [String: (kind: String, sha256: String)] = [:]
        for row in try connection.query(
            "SELECT name, kind, sha256 FROM models WHERE $1::text[] IS NULL OR name = ANY($1::text[])", [names.map(postgresArray)]
        ).rows {
            models[try row.decode("name")] = (try row.decode("kind"), try row.decode("sha256"))
        }
        return models
    }

    /// Records the store models `workerID` holds in its cache now (replacing what it said before).
    public func setWorkerModels(_ workerID: String, hashes: [String]) throws {
        try connection.transaction { connection in
            try connection.query("DELETE FROM worker_models WHERE worker_id = $1", [workerID])
            try connection.query(
                "INSERT INTO worker_models (worker_id, sha256) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                [workerID, postgresArray(hashes)])
        }
    }

    /// `tasks` with each task's `modelSHA256` and `storedAddOns` set from the store: the stored model's hash for a
    /// stored name, and those of the stored LoRAs (in `loras` or prompt tags), VAE and upscaler it names, nil for any other (the
    /// store is these fields' only writer; names it does not know go to workers' own folders).
    func withStoredModelHashes(_ tasks: [TaskParameters]) throws -> [TaskParameters] {
        let names = Set(tasks.flatMap { [$0.model] + $0.loraNames + [$0.vae, $0.upscaler].compactMap { $0 } })
        let stored = try storedModels(names: Array(names))
        guard !stored.isEmpty || tasks.contains(where: { $0.modelSHA256 != nil || $0.storedAddOns != nil }) else { return tasks }
        func hash(_ name: String?, kind: String) -> String? {
            name.flatMap { stored[$0] }.flatMap { $0.kind == kind ? $0.sha256 : nil }
        }
        return tasks.map { task in
            var task = task
            task.modelSHA256 = stored[task.model]?.sha256
            var loras: [String: String] = [:]
            for name in task.loraNames { loras[name] = hash(name, kind: "lora") }
            task.storedAddOns = StoredAddOns(loras: loras, vae: hash(task.vae, kind: "vae"), upscaler: hash(task.upscaler, kind: "upscaler"))
            return task
        }
    }
}
