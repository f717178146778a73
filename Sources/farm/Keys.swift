import ArgumentParser
import Foundation
import JobStore
import Logging
import ZeroMQ

/// `farm keys`: CURVE keys for the ZeroMQ links and the coordinator's allow-list of workers.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage CURVE keys: generate key pairs, and allow or revoke worker keys on the coordinator's allow-list.",
        subcommands: [KeysGenerate.self, KeysAllow.self, KeysRevoke.self, KeysList.self])
}

/// `farm keys generate FILE`: writes a key pair file (mode 0600) and prints its public key.
struct KeysGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Write a new key pair to FILE (readable by its owner only) and print the public key.")
    @Argument(help: "Where to write the key pair (refuses to overwrite).") var file: String

    func run() throws {
        guard !FileManager.default.fileExists(atPath: file) else { throw ValidationError("\(file) exists; remove it first or pick another name") }
        let pair = try CurveKeyPair.generate()
        guard
            FileManager.default.createFile(
                atPath: file, contents: Data(pair.fileContents.utf8),
                attributes: [.posixPermissions: 0o600])
        else {
            throw ValidationError("cannot write \(file)")
        }
        print(pair.publicKey)
    }
}

/// `farm keys allow KEY [--name N]`.
struct KeysAllow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "allow", abstract: "Let the worker with this public key connect.")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The worker's public key, or its key file.") var key: String
    @Option(help: "A label (e.g. the worker's host).") var name = ""

    func run() throws {
        let publicKey = try readPublicKey(key)
        let connection = try database.connect()
        try Migrator(folder: Migrator.locateFolder()).apply(to: connection)
        try JobStore(connection: connection).allowWorkerKey(publicKey, name: name)
        print("allowed \(publicKey)\(name.isEmpty ? "" : " (\(name))")")
    }
}

/// `farm keys revoke KEY`.
struct KeysRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Refuse this worker key from now on (live connections are dropped within 10 s).")
    @OptionGroup var database: DatabaseOptions
    @Argument(help: "The worker's public key, or its key file.") var key: String

    func run() throws {
        let publicKey = try readPublicKey(key)
        guard try JobStore(connection: try database.connect()).revokeWorkerKey(publicKey) else {
            throw ValidationError("\(publicKey) is not on the allow-list")
        }
        print("revoked \(publicKey)")
    }
}

/// `farm keys list`.
struct KeysList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List allowed and revoked worker keys.")
    @OptionGroup var database: DatabaseOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let keys = try JobStore(connection: try database.connect()).workerKeys()
        if json { return try printJSON(keys) }
        printTable(["PUBLIC KEY", "NAME", "CREATED", "REVOKED"], keys.map { [$0.publicKey, $0.name, $0.created, $0.revoked ?? "-"] })
    }
}

/// A public key given as itself or as a file holding it.
func readPublicKey(_ text: String) throws -> String {
    if CurveKeyPair.isKey(text) { return text }
    guard let contents = try? String(contentsOfFile: text, encoding: .utf8) else {
        throw ValidationError("\(text) is neither a CURVE public key (40 Z85 characters) nor a readable file")
    }
    do { return try CurveKeyPair.publicKey(from: contents) } catch { throw ValidationError("\(text): \(error)") }
}

/// A key pair file written by `farm keys generate`.
func readKeyPair(_ path: String) throws -> CurveKeyPair {
    guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read key file \(path)") }
    do { return try CurveKeyPair(fileContents: contents) } catch { throw ValidationError("\(path): \(error)") }
}

/// The CURVE flags a daemon shares: a key pair, or an explicit choice of plain TCP.
struct LinkSecurityOptions: ParsableArguments {
    @Option(help: "This daemon's CURVE key pair file (farm keys generate); the ZeroMQ link is then encrypted and authenticated.")
    var curveKey: String?

    @Flag(help: "Use plain, unencrypted and unauthenticated TCP (only on a trusted network; logs a warning).")
    var insecure = false

    func validate() throws {
        if curveKey == nil && !insecure { throw ValidationError("give --curve-key FILE (see farm keys generate) or --insecure for plain TCP") }
        if curveKey != nil && insecure { throw ValidationError("--curve-key and --insecure exclude each other") }
    }

    /// The key pair, or nil after warning that the link is plain TCP.
    func keyPair() throws -> CurveKeyPair? {
        guard let curveKey else {
            Logger(label: "farm.security").warning("--insecure: the ZeroMQ link is plain TCP, unencrypted and open to anyone who can reach it")
            return nil
        }
        return try readKeyPair(curveKey)
    }
}
