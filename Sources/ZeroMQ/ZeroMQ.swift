// Module ZeroMQ: the small Swift face on libzmq (contexts, sockets, polling, CURVE and ZAP). Imports only CZeroMQ.

import CZeroMQ
import Foundation

/// An error from libzmq, with its errno and message.
public struct ZMQError: Error, CustomStringConvertible, Equatable {
    /// libzmq's errno value.
    public var code: Int32
    /// What the call was doing.
    public var operation: String

    /// Captures the current zmq errno for `operation`.
    init(_ operation: String) {
        code = zmq_errno()
        self.operation = operation
    }

    /// True when a non-blocking call found nothing to do (EAGAIN).
    public var wouldBlock: Bool { code == EAGAIN }

    /// True when a ROUTER with `ZMQ_ROUTER_MANDATORY` had no connection for the routing id (EHOSTUNREACH).
    public var hostUnreachable: Bool { code == EHOSTUNREACH }

    public var description: String {
        "\(operation): \(String(cString: zmq_strerror(code)))"
    }
}

/// A libzmq context: owns the I/O threads that all its sockets share.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// Creates a context.
    public init() {
        handle = zmq_ctx_new()
    }

    deinit {
        zmq_ctx_term(handle)
    }
}

/// The socket patterns the farm uses.
public enum SocketType: Int32, Sendable {
    case router, dealer, pair, pub, sub, rep

    var zmqValue: Int32 {
        switch self {
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .pair: return ZMQ_PAIR
        case .pub: return ZMQ_PUB
        case .sub: return ZMQ_SUB
        case .rep: return ZMQ_REP
        }
    }
}

/// One ZeroMQ socket. Not thread-safe: keep it on the thread that made it.
public final class Socket {
    /// The raw `void*` socket, for the poller.
    let handle: UnsafeMutableRawPointer
    private let context: ZMQContext

    /// Opens a socket of `type` in `context`; linger defaults to 0 so closing never hangs.
    public init(_ context: ZMQContext, _ type: SocketType) throws {
        guard let socket = zmq_socket(context.handle, type.zmqValue) else { throw ZMQError("zmq_socket") }
        handle = socket
        self.context = context
        try setOption(ZMQ_LINGER, Int32(0))
    }

    deinit {
        zmq_close(handle)
    }

    /// Sets an integer socket option.
    public func setOption(_ option: Int32, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    /// Sets a 64-bit integer socket option (e.g. ZMQ_MAXMSGSIZE).
    public func setOption(_ option: Int32, _ value: Int64) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    /// Sets a bytes-valued socket option (identity, CURVE keys).
    public func setOption(_ option: Int32, _ value: Data) throws {
        let status = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, value.count) }
        guard status == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    /// The routing identity peers see (set before connecting).
    public func setIdentity(_ identity: String) throws {
        try setOption(ZMQ_ROUTING_ID, Data(identity.utf8))
    }

    /// Whether a ROUTER still has a connection for `routingID`: `frames` are sent to it with
    /// `ZMQ_ROUTER_MANDATORY` on for this one send (an unknown id fails at once instead of being dropped).
    public func routes(to routingID: Data, probe frames: [Data]) throws -> Bool {
        try setOption(ZMQ_ROUTER_MANDATORY, Int32(1))
        defer { try? setOption(ZMQ_ROUTER_MANDATORY, Int32(0)) }
        do {
            try send([routingID] + frames, dontWait: true)
            return true
        } catch let error as ZMQError where error.hostUnreachable {
            return false
        }
    }

    /// Refuses inbound messages larger than `bytes` (the peer is disconnected).
    public func setMaxMessageSize(_ bytes: Int) throws {
        try setOption(ZMQ_MAXMSGSIZE, Int64(bytes))
    }

    /// How long ZeroMQ waits before reconnecting a lost connection: `first`, doubling up to `max` seconds.
    public func setReconnectInterval(first: Double, max: Double) throws {
        try setOption(ZMQ_RECONNECT_IVL, Int32(first * 1000))
        try setOption(ZMQ_RECONNECT_IVL_MAX, Int32(max * 1000))
    }

    /// Listens on an endpoint such as `tcp://127.0.0.1:5555` (`:*` picks a free port).
    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
    }

    /// Connects to an endpoint; ZeroMQ reconnects by itself if the peer goes away.
    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    /// The endpoint actually bound (useful after binding to port `*`).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
        return String(cString: buffer)
    }

    /// Sends every frame as one multipart message. Returns false if it would block
    /// and `dontWait` was set.
    @discardableResult
    public func send(_ frames: [Data], dontWait: Bool = false) throws -> Bool {
        precondition(!frames.isEmpty, "a message needs at least one frame")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            let sent = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, frame.count, flags) }
            if sent < 0 {
                let error = ZMQError("zmq_send")
                if error.wouldBlock && index == 0 { return false }
                throw error
            }
        }
        return true
    }

    /// Receives one multipart message; nil when `dontWait` and nothing is waiting.
    public func receive(dontWait: Bool = false) throws -> [Data]? {
        try receiveMessage(dontWait: dontWait)?.frames
    }

    /// Receives one multipart message with the user id its connection's ZAP handshake gave
    /// (a CURVE peer's public key on a server with a ZAP handler; nil otherwise).
    public func receiveMessage(dontWait: Bool = false) throws -> (frames: [Data], userID: String?)? {
        var frames: [Data] = []
        var userID: String?
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while true {
            let received = zmq_msg_recv(&message, handle, dontWait ? ZMQ_DONTWAIT : 0)
            if received < 0 {
                let error = ZMQError("zmq_msg_recv")
                if error.wouldBlock && frames.isEmpty { return nil }
                if error.code == EINTR && frames.isEmpty { continue }
                throw error
            }
            // A ROUTER's routing-id frame is made locally and carries no metadata: ask every frame.
            if userID == nil, let property = zmq_msg_gets(&message, "User-Id") {
                let text = String(cString: property)
                userID = text.isEmpty ? nil : text
            }
            frames.append(Data(bytes: zmq_msg_data(&message), count: zmq_msg_size(&message)))
            if zmq_msg_more(&message) == 0 { return (frames, userID) }
        }
    }
}

/// Waits on several sockets and plain file descriptors at once (zmq_poll), so a
/// daemon can serve ZeroMQ and, say, a PostgreSQL notification socket in one loop.
public struct Poller {
    /// What to wait on.
    public enum Item {
        case socket(Socket)
        case fileDescriptor(Int32)
    }

    private var items: [Item] = []

    /// An empty poller.
    public init() {}

    /// Adds an item; its index is the position in the array `poll` returns.
    public mutating func add(_ item: Item) {
        items.append(item)
    }

    /// Waits up to `timeout` seconds (nil: forever) for any item to be readable;
    /// returns one flag per item, in the order they were added.
    public func poll(timeout: Double?) throws -> [Bool] {
        var raw = items.map { item -> zmq_pollitem_t in
            switch item {
            case .socket(let socket):
                return zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
            case .fileDescriptor(let fd):
                return zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0)
            }
        }
        let milliseconds = timeout.map { max(0, Int($0 * 1000)) } ?? -1
        let ready = withExtendedLifetime(items) { zmq_poll(&raw, Int32(raw.count), milliseconds) }
        if ready < 0 {
            let error = ZMQError("zmq_poll")
            if error.code == EINTR { return Array(repeating: false, count: items.count) }
            throw error
        }
        return raw.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
