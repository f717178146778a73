import FarmModel
import Foundation
import Imaging
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

/// Worker "hosts" in network namespaces, each linked by a veth pair to a bridge in the root
/// namespace, which plays the database and coordinator host. Needs root and `ip` (iproute2).
final class NamespaceNetwork {
    /// The coordinator host's address on the bridge.
    let coordinatorAddress: String
    /// Each worker host's namespace, its host-side link and its address.
    private(set) var hosts: [(namespace: String, link: String, address: String)] = []
    private let bridge: String

    /// Whether namespaces can be made here (root, iproute2, and a kernel that allows it).
    static let available: Bool = {
        guard getuid() == 0 else { return false }
        let probe = "farmprobe\(getpid())"
        guard (try? NamespaceNetwork.ip(["netns", "add", probe])) != nil else { return false }
        try? NamespaceNetwork.ip(["netns", "delete", probe])
        return true
    }()

    /// Makes a bridge and `hosts` namespaces on a subnet of its own.
    init(hosts count: Int) throws {
        let tag = String(getpid() % 100_000)
        let subnet = "10.\(200 + getpid() % 50).\(getpid() % 250)"
        bridge = "fbr\(tag)"
        coordinatorAddress = "\(subnet).1"
        try NamespaceNetwork.ip(["link", "add", bridge, "type", "bridge"])
        try NamespaceNetwork.ip(["addr", "add", "\(coordinatorAddress)/24", "dev", bridge])
        try NamespaceNetwork.ip(["link", "set", bridge, "up"])
        for index in 1...count {
            let namespace = "fw\(index)-\(tag)"
            let link = "fh\(index)-\(tag)"
            let inner = "fn\(index)-\(tag)"
            let address = "\(subnet).\(10 + index)"
            try NamespaceNetwork.ip(["netns", "add", namespace])
            hosts.append((namespace, link, address))
            try NamespaceNetwork.ip(["link", "add", link, "type", "veth", "peer", "name", inner])
            try NamespaceNetwork.ip(["link", "set", link, "master", bridge])
            try NamespaceNetwork.ip(["link", "set", link, "up"])
            try NamespaceNetwork.ip(["link", "set", inner, "netns", namespace])
            try NamespaceNetwork.ip(["-n", namespace, "addr", "add", "\(address)/24", "dev", inner])
            try NamespaceNetwork.ip(["-n", namespace, "link", "set", inner, "up"])
            try NamespaceNetwork.ip(["-n", namespace, "link", "set", "lo", "up"])
        }
    }

    /// Cuts (or restores) a worker host's only link.
    func setLink(host index: Int, up: Bool) throws {
        try NamespaceNetwork.ip(["link", "set", hosts[index].link, up ? "up" : "down"])
    }

    deinit {
        for host in hosts {
            try? NamespaceNetwork.ip(["link", "delete", host.link])
            try? NamespaceNetwork.ip(["netns", "delete", host.namespace])
        }
        try? NamespaceNetwork.ip(["link", "delete", bridge])
    }

    /// The `ip` program.
    static let ipProgram = URL(fileURLWithPath: FileManager.default.fileExists(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")

    /// Runs `ip` with these arguments; throws with its error output when it fails.
    static func ip(_ arguments: [String]) throws {
        let result = try runFarm(arguments, executable: ipProgram)
        guard result.status == 0 else {
            throw NamespaceError(description: "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        }
    }
}

/// A failed `ip` command.
struct NamespaceError: Error, CustomStringConvertible {
    var description: String
}

/// A host's install of the units in `Deploy/systemd`, as docs/MULTI-HOST.md sets one up, under a
/// test folder: its `/etc/diffusionfarm` (env file, keys) and models folder.
struct UnitInstall {
    /// The host's stand-in for `/etc/diffusionfarm`.
    let etc: URL
    /// The host's stand-in for `/var/lib/diffusionfarm/models`.
    let models: URL

    /// Makes the folders under `folder`.
    init(_ folder: URL) throws {
        etc = folder.appendingPathComponent("etc")
        models = folder.appendingPathComponent("models")
        for made in [etc, models] { try FileManager.default.createDirectory(at: made, withIntermediateDirectories: true) }
    }

    /// Writes `farm.env` from `Deploy/systemd/farm.env.example` with `values` in place of the
    /// example's (and added after it), then reads it back as systemd's `EnvironmentFile=` does.
    func writeEnvironment(_ values: [String: String]) throws -> [String: String] {
        let example = try String(contentsOf: deployFolder.appendingPathComponent("systemd/farm.env.example"), encoding: .utf8)
        var lines: [String] = []
        var left = values
        for line in example.components(separatedBy: "\n") {
            guard !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else {
                lines.append(line)
                continue
            }
            let key = String(line[..<equals])
            if let value = left.removeValue(forKey: key) { lines.append("\(key)=\(value)") } else { lines.append(line) }
        }
        lines += left.keys.sorted().map { "\($0)=\(left[$0]!)" }
        let file = etc.appendingPathComponent("farm.env")
        try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        var environment: [String: String] = [:]
        for line in try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n") {
            guard !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            environment[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return environment
    }

    /// The command line of a unit's `key=` line (`ExecStart`, `ExecStartPre`) as systemd runs it:
    /// `${VAR}`s from `environment` (each must be set), install paths mapped to this host's.
    func command(unit: String, _ key: String, environment: [String: String]) throws -> [String] {
        let text = try String(contentsOf: deployFolder.appendingPathComponent("systemd/\(unit)"), encoding: .utf8)
        let line = try #require(text.components(separatedBy: "\n").first { $0.hasPrefix(key + "=") }, "\(unit) has no \(key)")
        return try line.dropFirst(key.count + 1).split(separator: " ").map { word in
            var word = String(word)
            while let open = word.range(of: "${"), let close = word[open.upperBound...].firstIndex(of: "}") {
                let name = String(word[open.upperBound..<close])
                let value = try #require(environment[name], "\(unit) uses ${\(name)}, which farm.env.example does not set")
                word.replaceSubrange(open.lowerBound...close, with: value)
            }
            return word.replacingOccurrences(of: "/usr/local/bin/farm", with: farmBinary.path)
                .replacingOccurrences(of: "/etc/diffusionfarm", with: etc.path)
                .replacingOccurrences(of: "/var/lib/diffusionfarm/models", with: models.path)
        }
    }
}

/// The multi-host guide (docs/MULTI-HOST.md) across real links: a coordinator host with the
/// database, three worker hosts each in its own network namespace on their own addresses. Keys are
/// made, installed and allowed as the guide says, and each daemon runs its systemd unit's
/// `ExecStartPre`/`ExecStart` command with its `farm.env` (made from the example) as its only
/// environment. One host's link is cut mid-batch: its task comes back after the worker is declared
/// lost, the others render it; the link is restored and the host rejoins. Every task ends done with
/// one image. Then a host is removed as the guide says: drained (it exits) and its key revoked.
@Test(.enabled(if: NamespaceNetwork.available, "needs root and network namespaces (ip netns); skipped here"))
func farmAcrossNetworkNamespaces() throws {
    let network = try NamespaceNetwork(hosts: 3)
    let (conninfo, _) = try farmDatabase()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("multihost-\(UUID().uuidString.prefix(6))")
    defer { try? FileManager.default.removeItem(at: folder) }
    func farm(_ arguments: [String]) throws -> String {
        let result = try runFarmCapturing(arguments)
        #expect(result.status == 0, "farm \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"

    // Section 2, the coordinator host: its key pair (the public key printed, for the workers), its
    // env file, then the unit's ExecStartPre (migrations) and ExecStart.
    let coordinatorHost = try UnitInstall(folder.appendingPathComponent("coordinator"))
    let coordinatorKey = try farm(["keys", "generate", coordinatorHost.etc.appendingPathComponent("coordinator.key").path])
    let port = try TemporaryPostgres.freePort()
    let endpoint = "tcp://\(network.coordinatorAddress):\(port)"
    var coordinatorEnvironment = try coordinatorHost.writeEnvironment([
        "FARM_DATABASE": conninfo, "FARM_LISTEN": endpoint, "FARM_HTTP": "127.0.0.1:\(try TemporaryPostgres.freePort())",
        "FARM_HEARTBEAT": "0.25", "FARM_MISSED_HEARTBEATS": "8", "FARM_LEASE_SECONDS": "20",
    ])
    coordinatorEnvironment["PATH"] = path
    let migrate = try coordinatorHost.command(unit: "farm-coordinator.service", "ExecStartPre", environment: coordinatorEnvironment)
    let migrated = try runFarmCapturing(Array(migrate.dropFirst()), environment: coordinatorEnvironment)
    #expect(migrated.status == 0, "ExecStartPre: \(migrated.stderr)")
    let coordinatorCommand = try coordinatorHost.command(unit: "farm-coordinator.service", "ExecStart", environment: coordinatorEnvironment)
    let coordinator = try FarmProcess(Array(coordinatorCommand.dropFirst()), name: "multihost-coordinator", environment: coordinatorEnvironment)

    // Section 3, each worker host: its key pair, allowed by name; the coordinator's public key
    // installed; its env file naming the coordinator; the unit's ExecStart inside its namespace.
    let store = JobStore(connection: try Connection(conninfo))
    // Big enough (about a second each) that the batch is still running when a link is cut.
    let job = try store.enqueue(
        name: "multi-host", model: "demo",
        tasks: (0..<30).map {
            TaskParameters(
                prompt: "a small red circle at the top left on a blue background", model: "demo",
                width: 128, height: 128, steps: 8, seed: UInt64($0))
        })
    var workerKeys: [String] = []
    let workers = try network.hosts.enumerated().map { index, host in
        let install = try UnitInstall(folder.appendingPathComponent("host\(index + 1)"))
        let key = try farm(["keys", "generate", install.etc.appendingPathComponent("worker.key").path])
        workerKeys.append(key)
        // A Z85 key may start with "-": after "--" it is the key, not an option (one key in 85 did, and failed the run).
        _ = try farm(["keys", "allow", "--name", "host\(index + 1)", "--database", conninfo, "--", key])
        try (coordinatorKey + "\n").write(to: install.etc.appendingPathComponent("coordinator.pub"), atomically: true, encoding: .utf8)
        var environment = try install.writeEnvironment(["FARM_COORDINATOR": endpoint, "FARM_NAME": "host\(index + 1)"])
        environment["PATH"] = path
        let command = try install.command(unit: "farm-worker.service", "ExecStart", environment: environment)
        // `ip netns exec` hands over to the farm binary inside the host's namespace.
        return try FarmProcess(
            ["netns", "exec", host.namespace] + command, name: "host\(index + 1)",
            executable: NamespaceNetwork.ipProgram, environment: environment)
    }
    // `farm workers` lists each host within a heartbeat of its start.
    #expect(
        try waitFor(60) {
            let listed = try farm(["workers", "--database", conninfo])
            return (1...3).allSatisfy { listed.contains("host\($0)") }
        },
        "\(coordinator.output)\n---\n\(workers.map(\.output).joined(separator: "\n---\n"))")

    // Host 1 holds a task: cut its link.
    #expect(
        try waitFor(60) { try taskInProgress(store, worker: "host1") != nil },
        "\(coordinator.output)\n---\n\(workers[0].output)")
    try network.setLink(host: 0, up: false)
    #expect(waitFor(30) { coordinator.output.contains("worker host1 lost") }, "\(coordinator.output)")
    // The loss is logged when it is decided; the requeue is written by the database lane just after.
    func requeued() throws -> Int64 {
        try store.testConnection.query(
            """
            SELECT count(*)::bigint AS n FROM tasks WHERE job_id = $1 AND error_message LIKE 'worker host1 lost%'
            """, [job]
        ).single().decode("n", as: Int64.self)
    }
    #expect(try waitFor(30) { try requeued() >= 1 }, "host1's task was requeued when it was lost")
    // Restore the link: the worker introduces itself again.
    let joinsBefore = coordinator.output.components(separatedBy: "worker host1 on").count
    try network.setLink(host: 0, up: true)
    #expect(
        waitFor(60) { coordinator.output.components(separatedBy: "worker host1 on").count > joinsBefore },
        "host1 did not rejoin:\n\(coordinator.output)\n---\n\(workers[0].output)")
    #expect(try waitFor(180) { try store.progress(job: job).isFinished }, "\(coordinator.output)")
    #expect(try store.progress(job: job).counts == [.done: 30])
    let images = try store.images(job: job)
    #expect(images.count == 30 && Set(images.map(\.taskID)).count == 30)
    #expect(try images.allSatisfy { try PNGImage(pngData: $0.png).width == 128 })
    let hosts = try store.testConnection.query("SELECT id, host FROM workers ORDER BY id").rows.map { try $0.decode("id", as: String.self) }
    #expect(hosts == ["host1", "host2", "host3"])

    // Section 4, removing hosts: a drained worker finishes and exits; a revoked key's live link is
    // ignored and its worker is declared lost.
    _ = try farm(["drain", "host3", "--database", conninfo])
    #expect(waitFor(30) { !workers[2].process.isRunning }, "a drained worker exits: \(workers[2].output)")
    #expect(workers[2].process.terminationStatus == 0)
    _ = try farm(["keys", "revoke", "--database", conninfo, "--", workerKeys[1]])
    #expect(
        waitFor(30) { coordinator.output.contains("worker key was revoked") && coordinator.output.contains("worker host2 lost") },
        "\(coordinator.output)")
    withExtendedLifetime((coordinator, workers)) {}
}
