// How the AUTOMATIC1111 web UI turns a weighted prompt of any length into 77-token CLIP inputs
// (modules/sd_hijack_clip.py, tokenize_line); embedding names become their vectors' token ids.

/// A prompt as CLIP inputs: chunks of 77 token ids with one weight per token.
public struct PromptChunks: Sendable, Equatable {
    /// Each chunk: start token, 75 prompt or padding tokens, end token.
    public var tokens: [[Int]]
    /// The attention weight of each token; 1 for start, end and padding.
    public var weights: [[Float]]
    /// The prompt's token count as A1111 shows it: 75 per full chunk plus the tokens of the last one.
    public var tokenCount: Int
}

/// Splits weighted prompts into 75-token chunks as A1111's `tokenize_line` does.
///
/// With "!" padding (SD 2.x) each "!" of the prompt is its own token, id 0, as transformers' tokenizer gives it
/// to diffusers; the web UI tokenizes SD 2.x prompts with open_clip instead, which merges "!!" into one token
/// (`splitsExclamationMarks: false` reproduces that). Where the two disagree the engine follows diffusers.
public struct PromptChunker: Sendable {
    /// Prompt tokens per chunk; with start and end tokens a chunk is CLIP's 77.
    public static let chunkLength = 75

    /// Tokenizes each fragment.
    public let tokenizer: CLIPTokenizer
    /// A1111's "comma padding backtrack": when a chunk fills up and its last comma is at most this many
    /// tokens back, the tokens after the comma move to the next chunk. 0 turns it off; A1111's default is 20.
    public var commaPaddingBacktrack: Int
    /// What follows the end token: SD 1.x repeats `<|endoftext|>`, SD 2.x pads with "!" (id 0).
    public var padding: PaddingStyle
    /// Whether a "!" in the text is the pad token (transformers, diffusers) or ordinary text (open_clip, the web UI).
    public var splitsExclamationMarks: Bool
    /// The id of ",</w>", where the backtrack may break a chunk.
    private let commaID: Int?
    /// Textual-inversion embeddings whose names are replaced by their vectors' token ids.
    public var embeddings: PromptEmbeddings?

    /// A chunker with A1111's defaults; "!" is split as diffusers does unless `splitsExclamationMarks` says otherwise.
    public init(
        tokenizer: CLIPTokenizer, commaPaddingBacktrack: Int = 20, padding: PaddingStyle = .endOfText,
        splitsExclamationMarks: Bool? = nil
    ) {
        self.tokenizer = tokenizer
        self.commaPaddingBacktrack = commaPaddingBacktrack
        self.padding = padding
        self.splitsExclamationMarks = splitsExclamationMarks ?? (padding == .exclamationMark)
        commaID = tokenizer.encode(",").first
    }

    /// Parses `prompt`'s attention syntax and chunks it.
    public func chunks(for prompt: String) throws -> PromptChunks {
        chunks(for: try PromptParser.parse(prompt))
    }

    /// Chunks already parsed fragments.
    public func chunks(for fragments: [PromptFragment]) -> PromptChunks {
        let start = CLIPTokenizer.startOfTextID
        let end = CLIPTokenizer.endOfTextID
        var result = PromptChunks(tokens: [], weights: [], tokenCount: 0)
        var tokens: [Int] = []
        var weights: [Double] = []
        var lastComma = -1

        func finishChunk(isLast: Bool = false) {
            result.tokenCount += isLast ? tokens.count : Self.chunkLength
            let fill = Self.chunkLength - tokens.count
            var chunk = [start] + tokens + repeatElement(end, count: fill) + [end]
            // A1111 pads SD 2.x by replacing everything after the first end token (process_tokens).
            if padding.padTokenID != end, let firstEnd = chunk.firstIndex(of: end) {
                for index in (firstEnd + 1)..<chunk.count { chunk[index] = padding.padTokenID }
            }
            result.tokens.append(chunk)
            result.weights.append([1] + weights.map(Float.init) + repeatElement(1, count: fill) + [1])
            tokens.removeAll()
            weights.removeAll()
            lastComma = -1
        }

        for fragment in fragments {
            if fragment.isBreak {
                finishChunk()
                continue
            }
            let encoded = tokenizer.encode(fragment.text, padding: splitsExclamationMarks ? .exclamationMark : .endOfText)
            for token in embeddings?.substituting(encoded) ?? encoded {
                if token == commaID {
                    lastComma = tokens.count
                } else if commaPaddingBacktrack != 0 && tokens.count == Self.chunkLength && lastComma != -1
                    && tokens.count - lastComma <= commaPaddingBacktrack
                {
                    let moved = lastComma + 1
                    let movedTokens = Array(tokens[moved...])
                    let movedWeights = Array(weights[moved...])
                    tokens.removeSubrange(moved...)
                    weights.removeSubrange(moved...)
                    finishChunk()
                    tokens = movedTokens
                    weights = movedWeights
                }
                if tokens.count == Self.chunkLength { finishChunk() }
                tokens.append(token)
                weights.append(fragment.weight)
            }
        }
        if !tokens.isEmpty || result.tokens.isEmpty { finishChunk(isLast: true) }
        return result
    }
}
