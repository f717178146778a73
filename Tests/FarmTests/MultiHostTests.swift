import FarmModel
import Foundation
import JobStore
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
            let namespace = "fw\(index)-\(tag)", link = "fh\(index)-\(tag)", inner = "fn\(index)-\(tag)"
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

/// The multi-host guide (docs/MULTI-HOST.md) across real links: a coordinator host with the
/// database, three worker hosts each in its own network namespace on their own addresses, CURVE
/// keys made and allowed as the guide says. One host's link is cut mid-batch: its tasks come back
/// after the worker is declared lost, the others render them; the link is restored and the host
/// rejoins. Every task ends done with one image.
@Test(.enabled(if: NamespaceNetwork.available, "needs root and network namespaces (ip netns); skipped here"))
func farmAcrossNetworkNamespaces() throws {
    let network = try NamespaceNetwork(hosts: 3)
    let (conninfo, _) = try farmDatabase()
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("multihost-\(UUID().uuidString.prefix(6))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    // Keys as the guide makes them: the coordinator's pair, one per worker host, each allowed.
    func farm(_ arguments: [String]) throws -> String {
        let result = try runFarmCapturing(arguments)
        #expect(result.status == 0, "farm \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let coordinatorKey = try farm(["keys", "generate", folder.appendingPathComponent("coordinator.key").path])
    for index in 1...3 {
        let key = try farm(["keys", "generate", folder.appendingPathComponent("worker\(index).key").path])
        _ = try farm(["keys", "allow", key, "--name", "host\(index)", "--database", conninfo])
    }
    let port = try TemporaryPostgres.freePort()
    let endpoint = "tcp://\(network.coordinatorAddress):\(port)"
    let coordinator = try FarmProcess(["coordinator", "--curve-key", folder.appendingPathComponent("coordinator.key").path,
                                       "--database", conninfo, "--listen", endpoint, "--heartbeat", "0.25",
                                       "--missed-heartbeats", "8", "--lease-seconds", "20"], name: "multihost-coordinator")
    let store = JobStore(connection: try Connection(conninfo))
    let job = try store.enqueue(name: "multi-host", model: "synthetic", tasks: syntheticTasks(60))
    // Each worker runs inside its host's namespace: `ip netns exec` hands over to the farm binary.
    let workers = try network.hosts.enumerated().map { index, host in
        try FarmProcess(["netns", "exec", host.namespace, farmBinary.path, "worker", "--coordinator", endpoint,
                         "--curve-key", folder.appendingPathComponent("worker\(index + 1).key").path,
                         "--coordinator-key", coordinatorKey, "--name", "host\(index + 1)",
                         "--engine", "synthetic", "--synthetic-delay", "0.2"],
                        name: "host\(index + 1)", executable: NamespaceNetwork.ipProgram)
    }
    // Host 1 holds a task: cut its link.
    #expect(try waitFor(60) { try taskInProgress(store, worker: "host1") != nil },
            "\(coordinator.output)\n---\n\(workers[0].output)")
    try network.setLink(host: 0, up: false)
    #expect(waitFor(30) { coordinator.output.contains("worker host1 lost") }, "\(coordinator.output)")
    let requeued = try store.connection.query("""
        SELECT count(*)::bigint AS n FROM tasks WHERE job_id = $1 AND error_message LIKE 'worker host1 lost%'
        """, [job]).single().decode("n", as: Int64.self)
    #expect(requeued >= 1, "host1's task was requeued when it was lost")
    // Restore the link: the worker introduces itself again.
    let joinsBefore = coordinator.output.components(separatedBy: "worker host1 on").count
    try network.setLink(host: 0, up: true)
    #expect(waitFor(60) { coordinator.output.components(separatedBy: "worker host1 on").count > joinsBefore },
            "host1 did not rejoin:\n\(coordinator.output)\n---\n\(workers[0].output)")
    #expect(try waitFor(120) { try store.progress(job: job).isFinished }, "\(coordinator.output)")
    try expectAllDoneOnce(store, job: job, count: 60)
    // The three hosts joined (the database lists each).
    let hosts = try store.connection.query("SELECT id, host FROM workers ORDER BY id").rows.map { try $0.decode("id", as: String.self) }
    #expect(hosts == ["host1", "host2", "host3"])
    withExtendedLifetime((coordinator, workers)) {}
}
