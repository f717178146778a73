import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP proxy on loopback between workers and the coordinator that injects network faults:
/// it can delay every chunk it forwards, or cut every connection it carries (what a dropped
/// link or a restarted router does: in-flight messages are lost, ZeroMQ reconnects); in front of an HTTP port it can
/// also corrupt or cut one answer's body (`http`).
final class FaultProxy: @unchecked Sendable {
    /// The port workers connect to.
    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var links: [Link] = []
    private var delay: Double = 0
    private var open = true
    /// Faults in HTTP answers (for a proxy in front of the coordinator's HTTP port), and the requests seen.
    let http = HTTPFaults()

    /// Both directions of one proxied connection; the second pump to stop closes the sockets.
    private final class Link: @unchecked Sendable {
        let client: Int32, upstream: Int32
        private let lock = NSLock()
        private var pumps = 2
        init(client: Int32, upstream: Int32) { (self.client, self.upstream) = (client, upstream) }
        func cut() {
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
        }
        func pumpStopped() {
            cut()
            let last = lock.withLock {
                pumps -= 1
                return pumps == 0
            }
            if last {
                close(client)
                close(upstream)
            }
        }
    }

    /// Listens on a free loopback port and forwards to `upstreamPort` on loopback.
    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = FaultProxy.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 512) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Delays every chunk by `seconds` (0: none) from now on.
    func setDelay(_ seconds: Double) { lock.withLock { delay = seconds } }

    /// Cuts every connection now open; returns how many.
    @discardableResult
    func cutAll() -> Int {
        let current = lock.withLock {
            let all = links
            links.removeAll()
            return all
        }
        for link in current { link.cut() }
        return current.count
    }

    /// Stops accepting and cuts everything.
    func stop() {
        lock.withLock { open = false }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        cutAll()
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    private func acceptLoop() {
        while lock.withLock({ open }) {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = FaultProxy.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                // The coordinator is down (a restart fault): refuse, as its port would.
                close(upstream)
                close(client)
                continue
            }
            http.opened(client)
            let link = Link(client: client, upstream: upstream)
            lock.withLock { links.append(link) }
            Thread.detachNewThread { [self] in pump(link, from: client, to: upstream) }
            Thread.detachNewThread { [self] in pump(link, from: upstream, to: client) }
        }
    }

    private func pump(_ link: Link, from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        forwarding: while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            let pause = lock.withLock { delay }
            if pause > 0 { Thread.sleep(forTimeInterval: pause) }
            var forward = count
            var cutAfter = false
            if source == link.client {
                http.request(buffer[0..<count])
            } else {
                (forward, cutAfter) = http.answer(link.client, &buffer, count: count)
            }
            var sent = 0
            while sent < forward {
                let written = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, forward - sent, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { break forwarding }
                sent += written
            }
            if cutAfter { break }
        }
        link.pumpStopped()
    }
}
