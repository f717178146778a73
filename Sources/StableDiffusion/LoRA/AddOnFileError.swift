/// Why a LoRA or an embedding could not be used: the file (or the name a prompt gave), what is wrong with it and what
/// to do about it. Never a crash: every malformed or mismatched file ends here.
public struct AddOnFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind of failure, for callers and tests that react to each.
    public enum Code: String, Sendable {
        /// The file cannot be read, is truncated, or is not safetensors/a PyTorch checkpoint.
        case unreadable
        /// The file holds keys that name no LoRA part or no layer of this model.
        case unknownKeys
        /// A LoRA or embedding was made for another model family (SD 1.x vs SDXL, another text width).
        case wrongArchitecture
        /// A layer's parts do not fit together or do not fit the model's layer.
        case wrongShape
        /// A layer lacks a part it needs (a down without its up, a LoHa without `hada_w2_b`).
        case missingPart
        /// A form this engine does not implement (Tucker `lora_mid`/`hada_t1`, DoRA).
        case unsupported
        /// A prompt or a job names a LoRA or embedding that is not in its folder.
        case unknownName
        /// The file holds nothing usable.
        case empty
    }

    /// The kind of failure.
    public let code: Code
    /// The file, or the name that was looked up.
    public let file: String
    /// What is wrong and what to do.
    public let message: String

    /// Makes an error.
    public init(_ code: Code, file: String, _ message: String) {
        self.code = code
        self.file = file
        self.message = message
    }

    /// The file and the message on one line.
    public var description: String { "\(file): \(message)" }
}
