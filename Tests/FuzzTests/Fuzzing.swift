import Foundation
import Testing

/// A deterministic mutation fuzzer: takes corpus inputs and bends them the ways parsers trip on
/// (flipped bits, boundary bytes, cut, repeated or spliced ranges, huge numbers in text).
/// The run is bounded by time (`FARM_FUZZ_SECONDS`, default 2 s per parser) and reproducible from
/// `FARM_FUZZ_SEED`, so the test command runs it briefly and a long run is one variable away.
struct Mutator {
    private var state: UInt64

    /// A mutator whose sequence is fixed by `seed`.
    init(seed: UInt64) { state = seed &* 0x2545_F491_4F6C_DD1D | 1 }

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }

    /// One to four mutations of `input`; `other` is a second corpus entry for splicing.
    mutating func mutate(_ input: [UInt8], other: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0...below(4) {
            let position = below(bytes.count + 1)
            switch below(9) {
            case 0 where !bytes.isEmpty: bytes[below(bytes.count)] ^= UInt8(1 << below(8))
            case 1 where !bytes.isEmpty: bytes[below(bytes.count)] = [0, 0xFF, 0x7F, 0x80, 0x22, 0x5B, 0x7B, 0x0A][below(8)]
            case 2: bytes.insert(contentsOf: (0..<(1 + below(8))).map { _ in UInt8(truncatingIfNeeded: next()) }, at: position)
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, position + 1 + below(16))
                bytes.removeSubrange(min(position, end)..<end)
            case 4: bytes = Array(bytes.prefix(position))
            case 5 where !bytes.isEmpty:
                let start = below(bytes.count)
                let end = min(bytes.count, start + 1 + below(32))
                let piece = bytes[start..<end]
                for _ in 0..<(1 + below(64)) { bytes.insert(contentsOf: piece, at: min(position, bytes.count)) }
            case 6 where !other.isEmpty:
                let start = below(other.count)
                bytes.insert(contentsOf: other[start..<min(other.count, start + 1 + below(64))], at: position)
            case 7: bytes.insert(contentsOf: Array(["99999999999999999999", "-1", "1e308", "NaN", "\u{0}", "\u{FEFF}"][below(6)].utf8), at: position)
            default:
                if bytes.count >= 4 {
                    // Big-endian length fields (PNG chunks) and counts: set four bytes to an extreme.
                    let at = below(bytes.count - 3)
                    let value: [UInt8] = [[0xFF, 0xFF, 0xFF, 0xFF], [0x7F, 0xFF, 0xFF, 0xFF], [0, 0, 0, 0], [0, 0x10, 0, 0]][below(4)]
                    bytes.replaceSubrange(at..<(at + 4), with: value)
                }
            }
        }
        return bytes
    }
}

/// Runs `body` on mutations of `corpus` for the configured time; returns how many inputs ran.
/// A crash ends the test process, so finishing is the assertion that nothing crashed; `body`
/// checks that every input either parses or fails with the parser's own error type.
func fuzz(_ name: String, corpus: [[UInt8]], body: ([UInt8]) -> Void) -> Int {
    precondition(!corpus.isEmpty, "fuzzing \(name) needs a corpus")
    let environment = ProcessInfo.processInfo.environment
    let seconds = environment["FARM_FUZZ_SECONDS"].flatMap(Double.init) ?? 2
    let seed = environment["FARM_FUZZ_SEED"].flatMap(UInt64.init) ?? 20_261_127
    var mutator = Mutator(seed: seed &+ UInt64(name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
    for input in corpus { body(input) }
    let deadline = Date().addingTimeInterval(seconds)
    var runs = corpus.count
    while Date() < deadline {
        for _ in 0..<64 {
            let input = corpus[mutator.below(corpus.count)]
            let other = corpus[mutator.below(corpus.count)]
            body(mutator.mutate(input, other: other))
            runs += 1
        }
    }
    return runs
}

/// Counts of one parser's answers over a fuzz run: inputs it accepted and inputs it refused with
/// its own error type. Any other error is recorded as a test issue: callers must get typed errors.
struct Outcomes<Refusal: Error> {
    var accepted = 0, refused = 0

    mutating func record(_ parser: String, _ body: () throws -> Void) {
        do {
            try body()
            accepted += 1
        } catch is Refusal {
            refused += 1
        } catch {
            Issue.record("\(parser) threw an untyped error: \(error)")
        }
    }
}

/// The committed corpus files of one kind (Tests/FuzzTests/Corpus/<kind>/).
func corpusFiles(_ kind: String) -> [(name: String, bytes: [UInt8])] {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus/\(kind)")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.sorted() ?? []
    return names.compactMap { name in (try? Data(contentsOf: folder.appendingPathComponent(name))).map { (name, Array($0)) } }
}
