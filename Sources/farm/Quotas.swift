import ArgumentParser
import FarmModel
import Foundation
import JobStore

/// `farm quotas list|set`: owners' quotas and fair-share weights.
struct Quotas: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Owners' quotas (queued and running tasks) and fair-share weights.", subcommands: [QuotasList.self, QuotasSet.self])
}

/// `farm quotas list`: every owner with a quota or a job, and what it uses.
struct QuotasList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List owners with their quotas, weights and usage.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let quotas = try remote.ask([OwnerQuota].self, "quotas", database: database) { try $0.quotas() }
        if json { return try printJSON(quotas) }
        printTable(
            ["OWNER", "WEIGHT", "QUEUED", "MAX QUEUED", "RUNNING", "MAX RUNNING"],
            quotas.map {
                [
                    $0.owner.isEmpty ? "(none)" : $0.owner, String(format: "%g", $0.weight), "\($0.queued)", $0.maxQueued.map(String.init) ?? "-",
                    "\($0.running)", $0.maxRunning.map(String.init) ?? "-",
                ]
            })
    }
}

/// `farm quotas set OWNER [--max-queued N] [--max-running M] [--weight W]`: replaces the owner's quotas (an omitted
/// quota is none).
struct QuotasSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set an owner's quotas and weight; a quota left out is none, the weight defaults to 1.")
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions
    @Argument(help: "The owner (as its tokens name it).") var owner: String
    @Option(help: "Most tasks the owner may have queued; a submission past it is refused.") var maxQueued: Int?
    @Option(help: "Most of the owner's tasks running at once; the rest wait.") var maxRunning: Int?
    @Option(help: "The owner's share of the workers at equal priority, relative to others' (default 1).") var weight: Double = 1

    func run() throws {
        if let client = try remote.client() {
            let body = try JSONEncoder().encode([
                "max_queued": maxQueued.map { JSONValue.integer(Int64($0)) } ?? .null,
                "max_running": maxRunning.map { JSONValue.integer(Int64($0)) } ?? .null, "weight": .number(weight),
            ])
            guard !owner.contains("/") else { throw ValidationError("over --server, an owner's name cannot contain /") }
            return print(line(try client.json(OwnerQuota.self, "PUT", "quotas/" + owner, body: body)))
        }
        let store = JobStore(connection: try database.connect())
        do { try store.setQuota(owner: owner, maxQueued: maxQueued, maxRunning: maxRunning, weight: weight) } catch let failure as ValidationFailure {
            throw ValidationError(failure.description)
        }
        if let quota = try store.quotas().first(where: { $0.owner == owner }) { print(line(quota)) }
    }

    private func line(_ quota: OwnerQuota) -> String {
        "owner \(quota.owner): weight \(String(format: "%g", quota.weight)), max queued \(quota.maxQueued.map(String.init) ?? "none"), max running \(quota.maxRunning.map(String.init) ?? "none")"
    }
}
