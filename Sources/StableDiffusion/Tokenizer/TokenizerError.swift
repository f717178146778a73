/// Why a CLIP tokenizer could not be set up.
public enum CLIPTokenizerError: Error, Equatable, CustomStringConvertible {
    /// No vocabulary file at any of the paths tried, listed in order.
    case vocabularyNotFound(tried: [String])
    /// The vocabulary file exists but is not CLIP's `merges.txt`.
    case corruptVocabulary(path: String, reason: String)
    /// A tokenizer config names a pad token this tokenizer has no padding style for.
    case unsupportedPadToken(String)
    /// A `tokenizer_config.json` that is not a JSON object with a usable `pad_token`.
    case invalidTokenizerConfig(reason: String)

    /// What went wrong and what to do about it.
    public var description: String {
        switch self {
        case .vocabularyNotFound(let tried):
            return "CLIP vocabulary \(CLIPVocabulary.fileName) not found; tried: \(tried.joined(separator: ", ")). "
                + "Pass its URL to CLIPTokenizer(vocabularyURL:) or set \(CLIPVocabulary.environmentVariable) to its path "
                + "(it ships in Sources/StableDiffusion/Resources/)."
        case .corruptVocabulary(let path, let reason):
            return
                "CLIP vocabulary at \(path) is unusable (\(reason)); replace it with the merges.txt of CLIP's Hugging Face repositories (openai/clip-vit-large-patch14)."
        case .unsupportedPadToken(let token):
            return "pad token \"\(token)\" is not supported; use \"<|endoftext|>\" (SD 1.x) or \"!\" (SD 2.x)."
        case .invalidTokenizerConfig(let reason):
            return "tokenizer_config.json is invalid: \(reason); it must be a JSON object whose pad_token is a string or {\"content\": string}."
        }
    }
}
