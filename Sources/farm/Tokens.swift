import ArgumentParser
import FarmModel
import Foundation
import JobStore

/// `farm tokens create|list|revoke`: API tokens for the coordinator's HTTP API.
struct Tokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API tokens for the HTTP API (only their SHA-256 is stored).",
        subcommands: [TokensCreate.self, TokensList.self, TokensRevoke.self])
}

/// `farm tokens create --role admin|submit [--name N]`: prints only the token.
struct TokensCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Make a token and print it (shown once).")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Option(help: "submit (queue jobs, read jobs and images) or admin (everything).") var role: String
    @Option(help: "A label for the token.") var name = ""
    @Option(help: "Whose jobs it submits and, as a submit token, the only jobs it sees (default: --name).") var owner: String?

    func validate() throws {
        guard TokenRole(rawValue: role) != nil else { throw ValidationError("--role must be submit or admin, got \(role)") }
    }

    func run() throws {
        // The first admin token can only come from the database; later ones also from an admin over HTTP.
        if database.database == nil, let client = try remote.client() {
            let body = try JSONEncoder().encode(TokenRequest(role: TokenRole(rawValue: role)!, name: name, owner: owner))
            return print(try client.json(CreatedToken.self, "POST", "tokens", body: body).token)
        }
        let connection = try database.connect()
        try Migrator(folder: Migrator.locateFolder()).apply(to: connection)
        print(try JobStore(connection: connection).createToken(role: TokenRole(rawValue: role)!, name: name, owner: owner).token)
    }
}

/// `farm tokens list`: ids, roles, names and dates, never secrets.
struct TokensList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (no secrets).")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let tokens = try remote.ask([TokenRecord].self, "tokens", database: database) { try $0.tokens() }
        if json { return try printJSON(tokens) }
        printTable(
            ["ID", "ROLE", "NAME", "OWNER", "CREATED", "REVOKED"],
            tokens.map { ["\($0.id)", $0.role.rawValue, $0.name, $0.owner, $0.created, $0.revoked ?? "-"] })
    }
}

/// `farm tokens revoke ID`.
struct TokensRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by its id.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The token's id (farm tokens list).") var id: Int64

    func run() throws {
        if let client = try remote.client() {
            _ = try client.json(RevokedToken.self, "POST", "tokens/\(id)/revoke")
            return print("token \(id) revoked")
        }
        guard try JobStore(connection: try database.connect()).revokeToken(id: id) else {
            throw ValidationError("no unrevoked token has id \(id)")
        }
        print("token \(id) revoked")
    }
}
