import ArgumentParser
import FarmModel
import Foundation
import JobStore

/// `farm models add|list|remove`: the farm's model store, which workers fetch models from by SHA-256.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the model store: models that workers without them fetch from the coordinator, verified by SHA-256.",
        subcommands: [ModelsAdd.self, ModelsList.self, ModelsRemove.self])
}

/// Where a direct (database) model command finds the store's folder.
struct ModelStoreOptions: ParsableArguments {
    @Option(
        help:
            "The coordinator's model store folder, for commands run against the database (default: FARM_MODEL_STORE, then ~/.local/share/farm/models)."
    )
    var modelStore: String?

    /// The folder.
    func directory() throws -> ModelDirectory {
        try ModelDirectory(path: modelStore ?? ProcessInfo.processInfo.environment["FARM_MODEL_STORE"] ?? ModelDirectory.defaultPath)
    }
}

/// `farm models add FILE [--name N] [--kind K]`: streams the file into the store (over HTTP with `--server`), with
/// the sidecar `FILE-without-extension.config.json` beside it if there is one, so that workers get both.
struct ModelsAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a model file to the store (or point a name at new bytes).")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @OptionGroup var store: ModelStoreOptions
    @Argument(help: "The model file (.safetensors, .ckpt, .pt, .pth).") var file: String
    @Option(help: "The name tasks give it (`model: NAME`; default: the file name without its extension).") var name: String?
    @Option(help: "checkpoint, vae, lora, embedding, controlnet or upscaler (default: guessed from the file name, else checkpoint).")
    var kind: String?

    func validate() throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isFolder), !isFolder.boolValue else {
            throw ValidationError("\(file): no such file (the store holds single files; a diffusers folder stays in workers' --models)")
        }
        if let kind, !ModelRecord.kinds.contains(kind) { throw ValidationError("--kind must be one of \(ModelRecord.kinds.joined(separator: ", "))") }
        if TaskParameters.isStoredImageName(modelName) { throw ValidationError("a model name may not be a SHA-256 (64 hex digits)") }
    }

    /// The name the model gets.
    var modelName: String { name ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent }

    func run() throws {
        let url = URL(fileURLWithPath: file)
        let kind = self.kind ?? ModelRecord.guessKind(fileName: url.lastPathComponent)
        let config = try sidecar(of: url)
        let record: ModelRecord
        if let client = try remote.client() {
            // Hashed here first, so that the coordinator refuses bytes damaged on the way.
            let hash = try SHA256.hex(ofFile: url)
            let path = "model-store/" + (modelName.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? modelName)
            var headers = ["X-Model-SHA256": hash]
            if let config { headers[ModelRecord.configHeader] = Data(config.utf8).base64EncodedString() }
            let data = try client.upload(path, file: url, query: [URLQueryItem(name: "kind", value: kind)], headers: headers)
            record = try JSONDecoder().decode(ModelRecord.self, from: data)
        } else {
            let connection = try database.connect()
            try Migrator(folder: Migrator.locateFolder()).apply(to: connection)
            let upload = try store.directory().upload()
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { try upload.append(chunk) }
            let stored = try upload.finish(expectedSHA256: nil)
            record = try JobStore(connection: connection).addModel(
                name: modelName, kind: kind, sha256: stored.sha256, size: stored.size, config: config)
        }
        print(
            "model \(record.name) (\(record.kind), \(record.size) bytes\(record.hasConfig ? ", with its sidecar config" : "")): sha256 \(record.sha256)"
        )
    }

    /// The text of the sidecar beside `url`, checked before any bytes are stored; nil when there is none.
    func sidecar(of url: URL) throws -> String? {
        let file = ModelRecord.sidecar(of: url)
        guard FileManager.default.fileExists(atPath: file.path) else { return nil }
        guard let data = FileManager.default.contents(atPath: file.path), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("\(file.path): cannot read the sidecar config (check its permissions; it must be UTF-8 JSON)")
        }
        do { try JobStore.validateSidecar(text) } catch let failure as ValidationFailure {
            throw ValidationError("\(file.path): \(failure.message)")
        }
        return text
    }
}

/// `farm models list [--json]`: name, kind, size, SHA-256 and the workers that hold each model.
struct ModelsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the stored models and the workers that hold them.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let models = try remote.ask([ModelRecord].self, "model-store", database: database) { try $0.models() }
        if json { return try printJSON(models) }
        printTable(
            ["NAME", "KIND", "SIZE", "SHA256", "HOLDERS"],
            models.map { [$0.name, $0.kind, "\($0.size)", $0.sha256, $0.holders.isEmpty ? "-" : $0.holders.joined(separator: ",")] })
    }
}

/// `farm models remove NAME`: the name goes; the bytes go when no other name uses them. Workers keep their copies
/// until their cache budget evicts them.
struct ModelsRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a model from the store.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @OptionGroup var store: ModelStoreOptions
    @Argument(help: "The model's name.") var name: String

    func run() throws {
        if let client = try remote.client() {
            _ = try client.send(
                "DELETE", "model-store/" + (name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? name))
        } else {
            guard let removed = try JobStore(connection: try database.connect()).removeModel(named: name) else {
                throw ValidationError("no model named \(name) in the store")
            }
            if !removed.stillUsed { try store.directory().remove(removed.sha256) }
        }
        print("model \(name) removed")
    }
}
