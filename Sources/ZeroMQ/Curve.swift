import CZeroMQ
import Foundation

/// A CURVE key pair in Z85 text (40 characters each), the form libzmq takes and prints.
public struct CurveKeyPair: Sendable, Equatable {
    /// What peers put on their allow-lists or use as the server key.
    public let publicKey: String
    /// Kept by its owner only.
    public let secretKey: String

    /// A fresh random key pair.
    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError("zmq_curve_keypair (libzmq built without CURVE?)") }
        return CurveKeyPair(publicKey: String(cString: publicKey), secretKey: String(cString: secretKey))
    }

    /// The pair of a secret key; throws when `secretKey` is not a Z85 CURVE key.
    public init(secretKey: String) throws {
        guard CurveKeyPair.isKey(secretKey) else { throw CurveKeyError("not a CURVE secret key (40 Z85 characters)") }
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secretKey) == 0 else { throw ZMQError("zmq_curve_public") }
        self.init(publicKey: String(cString: publicKey), secretKey: secretKey)
    }

    private init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// True for a 40-character Z85 text that decodes to a 32-byte key.
    public static func isKey(_ text: String) -> Bool {
        guard text.utf8.count == 40 else { return false }
        var bytes = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&bytes, text) != nil
    }

    /// Z85 text of a raw 32-byte key (as ZAP requests carry it).
    public static func z85(_ key: Data) -> String? {
        guard key.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        let encoded = key.withUnsafeBytes { zmq_z85_encode(&text, $0.bindMemory(to: UInt8.self).baseAddress, 32) }
        return encoded == nil ? nil : String(cString: text)
    }

    /// The key file's text: both keys, one `name = value` per line.
    public var fileContents: String {
        "# DiffusionFarm CURVE key pair. Keep this file secret; share only the public key.\npublic-key = \(publicKey)\nsecret-key = \(secretKey)\n"
    }

    /// Reads a key file written by `fileContents` (the public key is derived from the secret one).
    public init(fileContents text: String) throws {
        guard let secret = CurveKeyPair.field("secret-key", in: text) else { throw CurveKeyError("no secret-key line in the key file") }
        try self.init(secretKey: secret)
    }

    /// A public key given as itself, or as a key file (or public-key file) holding a `public-key = …` line.
    public static func publicKey(from text: String) throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if isKey(trimmed) { return trimmed }
        if let key = field("public-key", in: text), isKey(key) { return key }
        throw CurveKeyError("not a CURVE public key: expected 40 Z85 characters or a file with a public-key line")
    }

    private static func field(_ name: String, in text: String) -> String? {
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 && parts[0] == name { return parts[1] }
        }
        return nil
    }
}

/// A key that is malformed.
public struct CurveKeyError: Error, CustomStringConvertible {
    /// What is wrong.
    public let description: String
    init(_ description: String) { self.description = description }
}

extension Socket {
    /// Makes this socket a CURVE server: every connection is encrypted, and clients are
    /// admitted by the ZAP handler of the same context (which must be bound first).
    public func makeCurveServer(secretKey: String) throws {
        try setOption(ZMQ_CURVE_SERVER, Int32(1))
        try setOption(ZMQ_CURVE_SECRETKEY, Data(secretKey.utf8))
        try setOption(ZMQ_ZAP_DOMAIN, Data("farm".utf8))
    }

    /// Makes this socket a CURVE client of the server with `serverKey`, using `keys` as its identity.
    public func makeCurveClient(serverKey: String, keys: CurveKeyPair) throws {
        try setOption(ZMQ_CURVE_SERVERKEY, Data(serverKey.utf8))
        try setOption(ZMQ_CURVE_PUBLICKEY, Data(keys.publicKey.utf8))
        try setOption(ZMQ_CURVE_SECRETKEY, Data(keys.secretKey.utf8))
    }
}

/// The ZAP (ZeroMQ authentication protocol, RFC 27) handler of one context: libzmq asks it
/// about every CURVE handshake, and it admits a client only if `allow` accepts its public key.
/// It is served from the daemon's own poll loop (add `socket` to the poller).
public final class ZAPHandler {
    /// The REP socket libzmq sends requests to.
    public let socket: Socket

    /// Binds `inproc://zeromq.zap.01` in `context` (one handler per context).
    public init(context: ZMQContext) throws {
        socket = try Socket(context, .rep)
        try socket.bind("inproc://zeromq.zap.01")
    }

    /// The next handshake waiting for an answer, or nil. A REP socket: answer it (`reply`) before asking for
    /// the next one; meanwhile the socket is best left out of the poller.
    public func receiveRequest() throws -> ZAPRequest? {
        while let frames = try socket.receive(dontWait: true) {
            // version, request id, domain, address, identity, mechanism, credentials…
            guard frames.count >= 6 else {
                // Malformed: still answered, or the REP socket would wait for this reply forever.
                try reply(to: ZAPRequest(requestID: frames.count > 1 ? frames[1] : Data(), mechanism: "", publicKey: nil), allowed: false)
                continue
            }
            let mechanism = String(decoding: frames[5], as: UTF8.self)
            let key = mechanism == "CURVE" && frames.count >= 7 ? CurveKeyPair.z85(frames[6]) : nil
            return ZAPRequest(requestID: frames[1], mechanism: mechanism, publicKey: key)
        }
        return nil
    }

    /// Answers a handshake: admitted (status 200, the key as its user id) or refused (400).
    public func reply(to request: ZAPRequest, allowed: Bool) throws {
        let admitted = allowed && request.publicKey != nil
        try socket.send([
            Data("1.0".utf8), request.requestID, Data((admitted ? "200" : "400").utf8),
            Data((admitted ? "OK" : "key not allowed").utf8), Data((admitted ? request.publicKey! : "").utf8), Data(),
        ])
    }
}

/// One CURVE handshake libzmq asks the ZAP handler about.
public struct ZAPRequest: Sendable {
    /// Echoed in the reply.
    public var requestID: Data
    /// The security mechanism the client used ("CURVE", "NULL", …).
    public var mechanism: String
    /// The client's public key (Z85) when it used CURVE.
    public var publicKey: String?
}
