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
        let config: TokenizerConfigFile
        do {
            config = try JSONDecoder().decode(TokenizerConfigFile.self, from: tokenizerConfig)
        } catch let error as CLIPTokenizerError {
            throw error
        } catch DecodingError.typeMismatch {
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "not a JSON object")
        } catch {
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "not JSON (\(error.localizedDescription))")
        }
        try self.init(padToken: config.padToken ?? "<|endoftext|>")
    }
}

/// The part of a transformers `tokenizer_config.json` the engine reads: the pad token, which older configs store as a
/// string and newer ones as an AddedToken object (`{"content": …}`).
struct TokenizerConfigFile: Decodable {
    /// The pad token; nil when the config has none.
    var padToken: String?

    private enum Keys: String, CodingKey {
        case padToken = "pad_token"
        case content
    }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        guard container.contains(.padToken) else { return }
        if try container.decodeNil(forKey: .padToken) {
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "pad_token is null, so padding to a fixed length is impossible")
        }
        if let token = try? container.decode(String.self, forKey: .padToken) {
            padToken = token
        } else if let object = try? container.nestedContainer(keyedBy: Keys.self, forKey: .padToken) {
            guard let content = try? object.decode(String.self, forKey: .content) else {
                throw CLIPTokenizerError.invalidTokenizerConfig(reason: "pad_token object has no string \"content\"")
            }
            padToken = content
        } else {
            throw CLIPTokenizerError.invalidTokenizerConfig(reason: "pad_token is neither a string nor an object")
        }
    }
}
