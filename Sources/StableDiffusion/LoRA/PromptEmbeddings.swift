import Foundation
import Tensors

/// The embeddings one prompt uses, with the token ids their vectors take: chunking replaces each name's tokens with
/// those ids, and each text encoder reads the ids' rows from `rows(encoder:)`. Immutable once made (its tensors are
/// never written), so it may be shared across threads.
public struct PromptEmbeddings: @unchecked Sendable {
    /// One embedding's name as tokens and the ids its vectors take.
    struct Entry {
        let nameTokens: [Int]
        let ids: [Int]
    }

    /// The embeddings, in the order their ids were given.
    public let embeddings: [TextualInversion]
    private let entries: [Entry]
    private let extras: [Tensor]

    /// Gives `embeddings` consecutive ids from `TextualInversion.firstTokenID` and checks their widths against text
    /// encoders of `widths`.
    public init(_ embeddings: [TextualInversion], encoderWidths widths: [Int], tokenizer: CLIPTokenizer) throws(AddOnFileError) {
        self.embeddings = embeddings
        var entries: [Entry] = []
        var perEncoder = Array(repeating: [Tensor](), count: widths.count)
        var next = TextualInversion.firstTokenID
        for embedding in embeddings {
            let rows = try embedding.rows(forEncoderWidths: widths)
            for index in rows.indices { perEncoder[index].append(rows[index]) }
            entries.append(Entry(nameTokens: tokenizer.encode(embedding.name), ids: Array(next..<(next + embedding.count))))
            next += embedding.count
        }
        self.entries = entries.sorted { $0.nameTokens.count > $1.nameTokens.count }
        extras = perEncoder.map { $0.isEmpty ? Tensor(zeros: [0, 0]) : Tensor.concat($0, axis: 0) }
    }

    /// The added rows encoder `index` reads (nil when there are none).
    public func rows(encoder index: Int) -> Tensor? {
        guard index < extras.count, extras[index].count > 0 else { return nil }
        return extras[index]
    }

    /// `tokens` with every embedding name's tokens replaced by its ids (the longest name first, as the web UI does).
    public func substituting(_ tokens: [Int]) -> [Int] {
        guard !entries.isEmpty else { return tokens }
        var result: [Int] = []
        var position = 0
        while position < tokens.count {
            if let entry = entries.first(where: { !$0.nameTokens.isEmpty && tokens[position...].starts(with: $0.nameTokens) }) {
                result += entry.ids
                position += entry.nameTokens.count
            } else {
                result.append(tokens[position])
                position += 1
            }
        }
        return result
    }

    /// The embeddings of `folders` whose names occur in any of `prompts` as whole words, read once each.
    public static func named(in prompts: [String], folders: [URL]) throws(AddOnFileError) -> [TextualInversion] {
        var found: [TextualInversion] = []
        for url in folders.flatMap(AddOnFiles.catalog) {
            let name = url.deletingPathExtension().lastPathComponent
            guard !found.contains(where: { $0.name == name }), prompts.contains(where: { mentions($0, name) }) else { continue }
            found.append(try TextualInversion.load(url))
        }
        return found
    }

    /// Whether `name` occurs in `text` with no letter, digit, `_` or `-` on either side.
    static func mentions(_ text: String, _ name: String) -> Bool {
        var searchRange = text.startIndex..<text.endIndex
        while let range = text.range(of: name, options: [.caseInsensitive], range: searchRange) {
            let before = range.lowerBound == text.startIndex ? nil : text[text.index(before: range.lowerBound)]
            let after = range.upperBound == text.endIndex ? nil : text[range.upperBound]
            let isWord: (Character?) -> Bool = { $0.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } ?? false }
            if !isWord(before) && !isWord(after) { return true }
            searchRange = range.upperBound..<text.endIndex
        }
        return false
    }
}
