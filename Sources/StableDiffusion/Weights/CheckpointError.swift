/// Why a checkpoint could not be loaded: the file, what was wrong with it (naming the
/// tensor key or the refused global where there is one) and what to do about it.
public struct CheckpointError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind of failure, for callers that react differently to each.
    public enum Code: String, Sendable {
        /// The file could not be opened or mapped (missing, unreadable, not a regular file).
        case unreadable
        /// The file is not a zip archive (or is PyTorch's pre-1.6 legacy format).
        case notZipArchive
        /// The zip structure is damaged: a record or an offset points outside the file.
        case corruptArchive
        /// The zip uses a feature this reader does not implement (compression, encryption, multiple disks).
        case unsupportedArchive
        /// An entry's bytes do not match the CRC-32 recorded for it.
        case checksumMismatch
        /// The pickle stream is truncated or inconsistent.
        case malformedPickle
        /// The pickle names a global outside the allow-list: the file would run code under `torch.load`.
        case refusedGlobal
        /// The pickle exceeds one of the loader's size caps.
        case limitExceeded
        /// The checkpoint is well formed but holds something this loader does not support.
        case unsupportedContent
        /// A tensor's shape, strides or offset do not fit its storage.
        case invalidTensor
    }

    /// The kind of failure.
    public let code: Code
    /// Path of the checkpoint.
    public internal(set) var file: String
    /// The state-dict key of the tensor concerned, when the failure concerns one.
    public internal(set) var tensorKey: String?
    /// What went wrong and what to do about it.
    public let message: String

    init(_ code: Code, _ message: String, tensorKey: String? = nil) {
        self.code = code
        self.message = message
        self.tensorKey = tensorKey
        file = ""
    }

    /// The file, the tensor key if any, and the message, on one line.
    public var description: String {
        var text = file.isEmpty ? "checkpoint" : file
        if let tensorKey { text += ": tensor '\(tensorKey)'" }
        return text + ": " + message
    }
}
