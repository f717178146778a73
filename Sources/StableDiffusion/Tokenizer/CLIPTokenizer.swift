import Foundation

/// OpenAI CLIP's byte-level BPE tokenizer, giving the ids of transformers' slow `CLIPTokenizer`
/// (the one diffusers uses) when ftfy is not installed.
///
/// Thread-safe: the tables are immutable and the BPE cache is behind a lock.
public final class CLIPTokenizer: @unchecked Sendable {
    /// `<|startoftext|>`, which starts every sequence.
    public static let startOfTextID = CLIPVocabulary.startOfText
    /// `<|endoftext|>`, which ends every sequence (and pads SD 1.x sequences).
    public static let endOfTextID = CLIPVocabulary.endOfText
    /// The number of token ids: 256 bytes, 256 word-final bytes, 48 894 merges and the two special tokens.
    public static let vocabularySize = CLIPVocabulary.size

    let vocabulary: CLIPVocabulary
    private let cacheLock = NSLock()
    /// Word piece (UTF-8 bytes) → its BPE ids; prompts repeat words, and merging is the costly step.
    private var cache: [[UInt8]: [Int32]] = [:]
    private static let cacheLimit = 50_000

    /// Loads the vocabulary from `vocabularyURL`, else from `FARM_CLIP_VOCAB`, else from the copy that ships
    /// with the module (resource bundle, then the source tree above the executable).
    public init(vocabularyURL: URL? = nil) throws {
        let url = try CLIPVocabulary.locate(explicit: vocabularyURL, environment: ProcessInfo.processInfo.environment)
        vocabulary = try CLIPVocabulary(contentsOf: url)
    }

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedInstance: CLIPTokenizer?

    /// The tokenizer with the shipped vocabulary, loaded on first use and kept for the process.
    public static func shared() throws -> CLIPTokenizer {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let sharedInstance { return sharedInstance }
        let tokenizer = try CLIPTokenizer()
        sharedInstance = tokenizer
        return tokenizer
    }

    /// The token ids of `text`, without start and end tokens and without truncation.
    public func encode(_ text: String) -> [Int] {
        ids(of: text, splittingOnExclamationMark: false)
    }

    /// The token ids of `text` as a tokenizer padding with `padding` gives them: with `!` as the pad token
    /// every "!" in the text is that special token (id 0), as transformers (and so diffusers) tokenize.
    public func encode(_ text: String, padding: PaddingStyle) -> [Int] {
        ids(of: text, splittingOnExclamationMark: padding == .exclamationMark)
    }

    /// `text` as a model input: start token, at most `maxLength − 2` ids, end token, then padding to `maxLength`
    /// (transformers' `padding="max_length", truncation=True`).
    public func tokenize(_ text: String, maxLength: Int = 77, padding: PaddingStyle) -> [Int] {
        precondition(maxLength >= 2, "maxLength must leave room for the start and end tokens, got \(maxLength)")
        // With "!" as pad token transformers also treats "!" in the text as a special token; doing the same
        // keeps SD 2.x ids identical to diffusers'.
        let body = ids(of: text, splittingOnExclamationMark: padding == .exclamationMark)
        var result = [Self.startOfTextID]
        result.reserveCapacity(maxLength)
        result += body.prefix(maxLength - 2)
        result.append(Self.endOfTextID)
        result += repeatElement(padding.padTokenID, count: maxLength - result.count)
        return result
    }

    /// The text of `ids`, as transformers' `decode(ids, skip_special_tokens=True)` gives it.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < Self.startOfTextID {
            // Every character of a non-special token is in the byte-level alphabet ("</w>" included).
            for scalar in vocabulary.tokens[id].unicodeScalars {
                bytes.append(UInt8(vocabulary.byteForScalar[Int(scalar.value)]))
            }
        }
        let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "</w>", with: " ")
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static let specialLiterals = [("<|startoftext|>", startOfTextID), ("<|endoftext|>", endOfTextID)]

    /// Splits on the special tokens first (transformers' added-token trie), then normalizes and BPEs the rest.
    private func ids(of text: String, splittingOnExclamationMark: Bool) -> [Int] {
        var result: [Int] = []
        let scalars = text.unicodeScalars
        var segmentStart = scalars.startIndex
        var index = segmentStart
        while index != scalars.endIndex {
            var special: (id: Int, end: String.UnicodeScalarView.Index)?
            if scalars[index] == "<" {
                for (literal, id) in Self.specialLiterals {
                    if let end = scalars[index...].prefixEnd(matching: literal.unicodeScalars) {
                        special = (id, end)
                        break
                    }
                }
            } else if splittingOnExclamationMark && scalars[index] == "!" {
                special = (PaddingStyle.exclamationMark.padTokenID, scalars.index(after: index))
            }
            if let special {
                appendIDs(of: scalars[segmentStart..<index], to: &result)
                result.append(special.id)
                index = special.end
                segmentStart = index
            } else {
                index = scalars.index(after: index)
            }
        }
        appendIDs(of: scalars[segmentStart...], to: &result)
        return result
    }

    private func appendIDs(of text: Substring.UnicodeScalarView, to result: inout [Int]) {
        guard !text.isEmpty else { return }
        var bytes: [UInt8] = []
        for word in CLIPTextNormalizer.words(text) {
            CLIPTextNormalizer.pieces(of: word) { piece in
                switch piece {
                case .special(let id):
                    result.append(id)
                case .text(let range):
                    bytes.removeAll(keepingCapacity: true)
                    for scalar in word[range] { appendUTF8(scalar, to: &bytes) }
                    result += bpe(bytes).lazy.map(Int.init)
                }
            }
        }
    }

    private func appendUTF8(_ scalar: Unicode.Scalar, to bytes: inout [UInt8]) {
        let value = scalar.value
        switch value {
        case ..<0x80:
            bytes.append(UInt8(value))
        case ..<0x800:
            bytes += [UInt8(0xC0 | value >> 6), UInt8(0x80 | value & 0x3F)]
        case ..<0x10000:
            bytes += [UInt8(0xE0 | value >> 12), UInt8(0x80 | value >> 6 & 0x3F), UInt8(0x80 | value & 0x3F)]
        default:
            bytes += [
                UInt8(0xF0 | value >> 18), UInt8(0x80 | value >> 12 & 0x3F),
                UInt8(0x80 | value >> 6 & 0x3F), UInt8(0x80 | value & 0x3F),
            ]
        }
    }

    /// Byte-pair merges of one piece: start from one token per byte (the last one word-final) and keep
    /// merging every occurrence of the adjacent pair with the lowest rank, as CLIP's `bpe` does.
    private func bpe(_ bytes: [UInt8]) -> [Int32] {
        cacheLock.lock()
        let cached = cache[bytes]
        cacheLock.unlock()
        if let cached { return cached }

        var word = bytes.dropLast().map { vocabulary.byteToken[Int($0)] }
        word.append(vocabulary.byteTokenAtEnd[Int(bytes[bytes.count - 1])])
        var merged: [Int32] = []
        while word.count > 1 {
            var best = UInt64.max
            var bestPair: UInt64 = 0
            for index in 0..<(word.count - 1) {
                let pair = UInt64(UInt32(word[index])) << 32 | UInt64(UInt32(word[index + 1]))
                if let entry = vocabulary.merges[pair], entry < best {
                    best = entry
                    bestPair = pair
                }
            }
            if best == .max { break }
            let left = Int32(bestPair >> 32)
            let right = Int32(bestPair & 0xFFFF_FFFF)
            let token = Int32(best & 0xFFFF_FFFF)
            merged.removeAll(keepingCapacity: true)
            var index = 0
            while index < word.count {
                if index + 1 < word.count && word[index] == left && word[index + 1] == right {
                    merged.append(token)
                    index += 2
                } else {
                    merged.append(word[index])
                    index += 1
                }
            }
            swap(&word, &merged)
        }

        cacheLock.lock()
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[bytes] = word
        cacheLock.unlock()
        return word
    }
}

extension Substring.UnicodeScalarView {
    /// The index just past `literal` if this view starts with it.
    fileprivate func prefixEnd(matching literal: String.UnicodeScalarView) -> Index? {
        var index = startIndex
        for expected in literal {
            guard index != endIndex, self[index] == expected else { return nil }
            index = self.index(after: index)
        }
        return index
    }
}
