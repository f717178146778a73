import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Postgres
import TestSupport
import Testing

/// A local HTTP receiver of job-end notifications on a real socket: it answers 500 to the first `failures` POSTs
/// about each job and 200 after, and records every one.
final class HookReceiver: @unchecked Sendable {
    /// One POST: the job its body names, the outbox id it carried, and the status answered.
    struct Delivery {
        var job: Int64
        var notification: String
        var status: Int
        var body: JobNotification?
    }

    let port: Int
    private let fd: Int32
    private let failures: Int
    private let lock = NSLock()
    private var received: [Delivery] = []

    /// Listens on a free 127.0.0.1 port and serves on a thread of its own.
    init(failures: Int) throws {
        self.failures = failures
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in serve() }.start()
    }

    /// What it has received so far.
    var deliveries: [Delivery] { lock.withLock { received } }

    /// Stops listening.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var expected: Int?
        while expected.map({ data.count < $0 }) ?? true {
            let n = recv(client, &buffer, buffer.count, 0)
            if n <= 0 { return }
            data.append(contentsOf: buffer[0..<n])
            if expected == nil, let end = data.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).lowercased()
                let length =
                    head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                expected = end.upperBound + length
            }
        }
        guard let end = data.range(of: Data("\r\n\r\n".utf8)) else { return }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self)
        let notification =
            head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("x-farm-notification:") }
            .map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) } ?? ""
        let body = try? JSONDecoder().decode(JobNotification.self, from: data[end.upperBound...])
        let job = body?.job ?? -1
        let status = lock.withLock { () -> Int in
            let status = received.filter { $0.job == job }.count < failures ? 500 : 200
            received.append(Delivery(job: job, notification: notification, status: status, body: body))
            return status
        }
        let answer = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Internal Server Error")\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        _ = answer.withCString { send(client, $0, strlen($0), 0) }
    }
}

@Test func aNotificationReachesTheReceiverExactlyOnceAfterTwoFailedAttempts() throws {
    let receiver = try HookReceiver(failures: 2)
    defer { receiver.stop() }
    let (conninfo, endpoint) = try farmDatabase()
    let coordinator = try FarmProcess(
        [
            "coordinator", "--insecure", "--database", conninfo, "--listen", endpoint, "--heartbeat", "0.2", "--missed-heartbeats", "10",
            "--notify-retry-seconds", "0.2",
        ], name: "notify-coordinator")
    let worker = try startSyntheticWorker(endpoint, name: "notified", delay: 0.05)
    let store = JobStore(connection: try Connection(conninfo))
    let hook = "http://127.0.0.1:\(receiver.port)/hook"
    let done = try store.enqueue(name: "done", model: "synthetic", notify: hook, tasks: syntheticTasks(3))
    // No worker has this model: the job waits until it is cancelled.
    let cancelled = try store.enqueue(name: "cancelled", model: "none", notify: hook, tasks: [TaskParameters(prompt: "x", model: "none")])
    let silent = try store.enqueue(name: "silent", model: "synthetic", tasks: syntheticTasks(1))
    #expect(try waitFor(60) { try store.progress(job: done).isFinished && store.progress(job: silent).isFinished }, "\(coordinator.output)")
    let cancel = try runFarmCapturing(["cancel", String(cancelled), "--database", conninfo])
    #expect(cancel.status == 0, "\(cancel.stderr)")

    func answered(_ job: Int64) -> Bool { receiver.deliveries.contains { $0.job == job && $0.status == 200 } }
    #expect(waitFor(60) { answered(done) && answered(cancelled) }, "\(receiver.deliveries)\n\(coordinator.output)")
    // Well past several retry periods: nothing more arrives once a 2xx was answered.
    Thread.sleep(forTimeInterval: 3)
    let deliveries = receiver.deliveries
    for job in [done, cancelled] {
        let mine = deliveries.filter { $0.job == job }
        #expect(mine.map(\.status) == [500, 500, 200], "job \(job): \(mine.map(\.status))")
        #expect(Set(mine.map(\.notification)).count == 1, "every attempt carries the same outbox id")
    }
    #expect(!deliveries.contains { $0.job == silent }, "a job without notify is not told")
    let told = try #require(deliveries.last { $0.job == done }?.body)
    #expect(told.state == "done" && told.name == "done" && told.tasks == 3 && told.counts.done == 3)
    let cancelledBody = try #require(deliveries.last { $0.job == cancelled }?.body)
    #expect(cancelledBody.state == "cancelled" && cancelledBody.counts.cancelled == 1)
    let rows = try store.testConnection.query(
        "SELECT count(*)::bigint AS n FROM notifications WHERE delivered_at IS NOT NULL AND attempts = 3 AND given_up_at IS NULL"
    ).single()
    #expect(try rows.decode("n", as: Int64.self) == 2)

    // A job that ends while no coordinator runs is told by the next one: the outbox is in PostgreSQL.
    coordinator.crash()
    let later = try store.enqueue(name: "later", model: "none", notify: hook, tasks: [TaskParameters(prompt: "x", model: "none")])
    #expect(try runFarmCapturing(["cancel", String(later), "--database", conninfo]).status == 0)
    let restarted = try FarmProcess(
        [
            "coordinator", "--insecure", "--database", conninfo, "--listen", endpoint, "--heartbeat", "0.2", "--missed-heartbeats", "10",
            "--notify-retry-seconds", "0.2",
        ], name: "notify-coordinator-2")
    #expect(waitFor(60) { answered(later) }, "\(receiver.deliveries)\n\(restarted.output)")
    Thread.sleep(forTimeInterval: 2)
    #expect(receiver.deliveries.filter { $0.job == later }.map(\.status) == [500, 500, 200])
    #expect(receiver.deliveries.filter { $0.job != later }.count == deliveries.count, "the earlier jobs are not told again")
    withExtendedLifetime((coordinator, worker, restarted)) {}
}
