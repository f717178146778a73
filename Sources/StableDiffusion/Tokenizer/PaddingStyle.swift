import Foundation

/// The token that fills a CLIP sequence after its end token.
public enum PaddingStyle: Sendable, Hashable {
    /// `<|endoftext|>` (49407): SD 1.x, and transformers' default `pad_token` for CLIP.
    case endOfText
    /// `!` (0): SD 2.x's tokenizer config. transformers then also treats every "!" in the prompt as a special
    /// token, so "wow!!" gives 0, 0 instead of the id of "!!"; `CLIPTokenizer.tokenize` does the same.
    case exclamationMark

    /// The pad token's id.
    public var padTokenID: Int {
        switch self {
        case .endOfText: return CLIPVocabulary.endOfText
        case .exclamationMark: return 0
        }
    }

    /// The style whose pad token is `padToken` (a `pad_token` string of a tokenizer config).
    public init(padToken: String) throws {
        switch padToken {
        case "<|endoftext|>": self = .endOfText
        case "!": self = .exclamationMark
        default: throw CLIPTokenizerError.unsupportedPadToken(padToken)
        }
    }

    /// The style of a transformers `tokenizer_config.json`; without a `pad_token` it is CLIPTokenizer's default.
    public init(tokenizerConfig: Data) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: tokenizerConfig)
        } catch {
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "not JSON (\(error.localizedDescription))")
        }
        guard let config = object as? [String: Any] else {
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "not a JSON object")
        }
        // Older configs store the token as a string, newer ones as an AddedToken object.
        switch config["pad_token"] {
        case nil:
            self = .endOfText
        case is NSNull:
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "pad_token is null, so padding to a fixed length is impossible")
        case let token as String:
            try self.init(padToken: token)
        case let token as [String: Any]:
            guard let content = token["content"] as? String else {
                throw CLIPTokenizerError.invalidTokenizerConfig(reason: "pad_token object has no string \"content\"")
            }
            try self.init(padToken: content)
        default:
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "pad_token is neither a string nor an object")
        }
    }
}
