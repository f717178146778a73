import Foundation

/// The byte-level BPE tables of OpenAI CLIP, built from its merges (the plain-text `merges.txt` of CLIP's Hugging
/// Face repositories, which the bundled demo model ships) exactly as open_clip's SimpleTokenizer and transformers'
/// vocab.json/merges.txt build them.
struct CLIPVocabulary: Sendable {
    static let fileName = "demo/tokenizer/merges.txt"
    /// The CRC-32 of CLIP's merge lines (each with its newline, without the header): the ids follow from the merges,
    /// so any other list (a damaged or different file) would give ids the text encoders do not know.
    static let mergesChecksum: UInt32 = 0xF1E4_4E3F
    static let environmentVariable = "FARM_CLIP_VOCAB"
    /// CLIP keeps merges[1 ..< 49152 − 256 − 2 + 1] of the file: 48 894 merges.
    static let mergeCount = 49152 - 256 - 2
    static let size = 2 * 256 + mergeCount + 2
    static let startOfText = 49406
    static let endOfText = 49407

    /// Token strings by id, in the byte-level alphabet; `</w>` ends a word.
    let tokens: [String]
    /// The id of each byte's one-character token inside a word, and at a word's end (with `</w>`).
    let byteToken: [Int32]
    let byteTokenAtEnd: [Int32]
    /// (left id << 32 | right id) → (merge rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    /// The byte behind each character of the byte-level alphabet, indexed by its scalar value; −1 for none.
    let byteForScalar: [Int16]

    /// The bytes that GPT-2's byte map keeps as their own Latin-1 character: printable, not space.
    private static let printableBytes = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
    /// The order in which GPT-2's byte map lists the 256 bytes, which is their order in the vocabulary.
    private static let byteOrder = printableBytes + (0..<256).filter { !printableBytes.contains($0) }

    /// GPT-2's reversible byte → character map: printable bytes stand for themselves, the others (control
    /// characters, space, …) move to U+0100 and up, so that no token contains whitespace.
    static let byteEncoder: [Unicode.Scalar] = {
        var byByte = (0..<256).map { Unicode.Scalar(UInt8($0)) }
        for (offset, byte) in byteOrder[printableBytes.count...].enumerated() {
            byByte[byte] = Unicode.Scalar(UInt32(256 + offset))!
        }
        return byByte
    }()

    /// Reads the merges file at `url` and builds the tables.
    init(contentsOf url: URL) throws {
        let text: Data
        do {
            text = try Data(contentsOf: url)
        } catch {
            throw CLIPTokenizerError.corruptVocabulary(path: url.path, reason: "cannot read it: \(error.localizedDescription)")
        }
        do {
            try self.init(text: [UInt8](text))
        } catch let error as VocabularyFormatError {
            throw CLIPTokenizerError.corruptVocabulary(path: url.path, reason: error.reason)
        }
    }

    private struct VocabularyFormatError: Error { let reason: String }

    /// Builds the tables from the file: a header line, then one "left right" merge per line.
    private init(text: [UInt8]) throws {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(Self.mergeCount)
        var lineStart = 0
        var lineNumber = 0
        for index in text.indices where text[index] == UInt8(ascii: "\n") {
            defer {
                lineStart = index + 1
                lineNumber += 1
            }
            guard lineNumber >= 1 else { continue }
            let parts = text[lineStart..<index].split(separator: UInt8(ascii: " "))
            guard parts.count == 2 else {
                throw VocabularyFormatError(reason: "line \(lineNumber + 1) is not a merge of two tokens")
            }
            pairs.append((String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self)))
            if pairs.count == Self.mergeCount { break }
        }
        guard pairs.count == Self.mergeCount else {
            throw VocabularyFormatError(reason: "it has \(pairs.count) merges, CLIP needs \(Self.mergeCount)")
        }
        let firstMerge = (text.firstIndex(of: UInt8(ascii: "\n")) ?? 0) + 1
        let checksum = text[firstMerge..<lineStart].withUnsafeBytes { CRC32.checksum($0) }
        guard checksum == Self.mergesChecksum else {
            throw VocabularyFormatError(reason: "its merges are not CLIP's (CRC-32 \(String(checksum, radix: 16)))")
        }

        let byteStrings = Self.byteOrder.map { String(Self.byteEncoder[$0]) }
        var tokens = byteStrings + byteStrings.map { $0 + "</w>" }
        tokens.reserveCapacity(Self.size)
        for (left, right) in pairs { tokens.append(left + right) }
        tokens += ["<|startoftext|>", "<|endoftext|>"]

        // Later duplicates win, as in the Python dicts that map token → id and pair → rank. Swift compares
        // Strings up to canonical equivalence, but the byte-level alphabet (U+0021…U+0143) has no combining
        // marks, so no two different tokens are equivalent and this is byte equality, as in Python.
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() { ids[token] = Int32(id) }
        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(pairs.count)
        for (rank, (left, right)) in pairs.enumerated() {
            // A pair whose halves are not tokens can never form, so it needs no entry.
            guard let leftID = ids[left], let rightID = ids[right], let merged = ids[left + right] else { continue }
            merges[UInt64(leftID) << 32 | UInt64(rightID)] = UInt64(rank) << 32 | UInt64(merged)
        }

        var byteToken = [Int32](repeating: 0, count: 256)
        var byteTokenAtEnd = byteToken
        var byteForScalar = [Int16](repeating: -1, count: 512)
        for (position, byte) in Self.byteOrder.enumerated() {
            byteToken[byte] = Int32(position)
            byteTokenAtEnd[byte] = Int32(256 + position)
            byteForScalar[Int(Self.byteEncoder[byte].value)] = Int16(byte)
        }
        self.tokens = tokens
        self.byteToken = byteToken
        self.byteTokenAtEnd = byteTokenAtEnd
        self.merges = merges
        self.byteForScalar = byteForScalar
    }

    /// Finds the vocabulary file: `explicit`, else `FARM_CLIP_VOCAB`, else SwiftPM's resource bundle
    /// next to the executable, else `Sources/StableDiffusion/Resources/` in a folder above the executable.
    static func locate(explicit: URL?, environment: [String: String]) throws -> URL {
        let files = FileManager.default
        // A path the caller chose is final: falling back to another file would hide the mistake.
        if let explicit {
            guard files.fileExists(atPath: explicit.path) else { throw CLIPTokenizerError.vocabularyNotFound(tried: [explicit.path]) }
            return explicit
        }
        if let path = environment[environmentVariable], !path.isEmpty {
            guard files.fileExists(atPath: path) else {
                throw CLIPTokenizerError.vocabularyNotFound(tried: ["\(path) (from \(environmentVariable))"])
            }
            return URL(fileURLWithPath: path)
        }
        switch BundledResource.locate(fileName) {
        case .success(let url): return url
        case .failure(let notFound): throw CLIPTokenizerError.vocabularyNotFound(tried: notFound.tried)
        }
    }
}
