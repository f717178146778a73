import Foundation

/// Faults `FaultProxy` injects into HTTP answers passing through it, each once: a flipped body byte (a corrupted
/// transfer) or a connection cut after some body bytes (a dropped link mid-download). It also keeps each request's
/// head, so a test can see which were made (`Range:` resumes). Each connection is taken to carry one answer, as a
/// worker's model downloads do (a session of their own each).
final class HTTPFaults: @unchecked Sendable {
    private let lock = NSLock()
    private var corruptAt: Int?
    private var cutAfter: Int?
    private var answers: [Int32: (head: [UInt8], inBody: Bool, body: Int)] = [:]
    private var heads: [String] = []

    /// Flips the byte at `offset` of the next answer body that reaches it.
    func corruptOnce(atBodyOffset offset: Int) { lock.withLock { corruptAt = offset } }

    /// Cuts the next connection whose answer body passes `bytes` bytes, after forwarding exactly that many.
    func cutOnce(afterBodyBytes bytes: Int) { lock.withLock { cutAfter = bytes } }

    /// A new connection on `link` (a file descriptor the kernel may have used before): its answer starts afresh.
    func opened(_ link: Int32) { lock.withLock { answers[link] = nil } }

    /// The heads of the requests seen so far (request line and headers).
    var requests: [String] { lock.withLock { heads } }

    /// A chunk from a client: a request's head is recorded.
    func request(_ bytes: ArraySlice<UInt8>) {
        // Only chunks that start a request are decoded: ZeroMQ traffic through the same proxy stays cheap.
        guard ["GET ", "HEAD ", "PUT ", "POST "].contains(where: { bytes.starts(with: $0.utf8) }) else { return }
        let text = String(decoding: bytes.prefix(8192), as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n").first ?? text
        lock.withLock { heads.append(head) }
    }

    /// A chunk of the answer on connection `link`: corrupts it in place when the corruption falls in it; returns how
    /// many of its `count` bytes to forward and whether to cut the connection after them.
    func answer(_ link: Int32, _ buffer: inout [UInt8], count: Int) -> (forward: Int, cut: Bool) {
        lock.withLock {
            // Unarmed, nothing is tracked: other traffic through the proxy is forwarded untouched and cheaply.
            guard corruptAt != nil || cutAfter != nil else { return (count, false) }
            var state = answers[link] ?? ([], false, 0)
            var bodyStart = 0
            if !state.inBody {
                let before = state.head.count
                state.head += buffer[0..<count]
                guard let end = Self.find([13, 10, 13, 10], in: state.head, from: max(0, before - 3)) else {
                    answers[link] = state
                    return (count, false)
                }
                state.inBody = true
                bodyStart = end + 4 - before
            }
            let bodyBytes = count - bodyStart
            if let at = corruptAt, at >= state.body, at < state.body + bodyBytes {
                buffer[bodyStart + at - state.body] ^= 0xFF
                corruptAt = nil
            }
            var forward = count
            var cut = false
            if let limit = cutAfter, state.body + bodyBytes >= limit {
                forward = bodyStart + (limit - state.body)
                cutAfter = nil
                cut = true
            }
            state.body += bodyBytes
            answers[link] = state
            return (forward, cut)
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count - start >= needle.count else { return nil }
        return (start...(haystack.count - needle.count)).first { haystack[$0..<$0 + needle.count].elementsEqual(needle) }
    }
}
