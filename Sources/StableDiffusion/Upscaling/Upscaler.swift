import Foundation
import Tensors

/// An image upscaler model: ESRGAN / Real-ESRGAN's RRDBNet (×4, or ×2 and ×1 with a pixel-unshuffled input) or
/// Real-ESRGAN's SRVGGNetCompact, loaded from `.pth` (through the restricted unpickler; a `params_ema` or `params`
/// state dict is taken from inside the file) or `.safetensors`, with the architecture and scale read from the keys
/// as spandrel reads them. Images are [N, C, H, W] in [0, 1].
public struct Upscaler {
    /// The architectures, as spandrel names them.
    public enum Architecture: String, Sendable {
        /// RRDBNet (ESRGAN, Real-ESRGAN, BSRGAN).
        case esrgan = "ESRGAN"
        /// SRVGGNetCompact (Real-ESRGAN's compact models).
        case compact = "Compact"
    }

    enum Network {
        case rrdb(RRDBNet)
        case compact(CompactNet)
    }

    let network: Network
    /// Which architecture the file holds.
    public let architecture: Architecture

    /// Builds the upscaler from a state dict (any of the key layouts spandrel reads for these architectures).
    public init(weights: [String: Tensor], source: String) throws {
        let keys = Set(weights.keys)
        if UpscalerKeys.isRRDB(keys) {
            guard !UpscalerKeys.isRRDBPlus(keys) else {
                throw UpscalerError(source, "ESRGAN+ models (conv1x1 layers) are not supported; use an ESRGAN or Real-ESRGAN model")
            }
            let renamed = try UpscalerKeys.newRRDBNames(weights, path: source)
            network = .rrdb(try RRDBNet(WeightReader(renamed, source: source)))
            architecture = .esrgan
        } else if UpscalerKeys.isCompact(keys) {
            network = .compact(try CompactNet(WeightReader(weights, source: source)))
            architecture = .compact
        } else {
            let sample = keys.sorted().prefix(3).joined(separator: ", ")
            throw UpscalerError(
                source,
                "not an ESRGAN, Real-ESRGAN or SRVGGNetCompact model (keys start \(sample)); other upscaler architectures are not supported")
        }
    }

    /// Loads the model file at `url` (`.pth`, `.pt`, `.ckpt` or `.safetensors`).
    public static func load(_ url: URL) throws -> Upscaler {
        guard FileManager.default.fileExists(atPath: url.path) else { throw UpscalerError(url.path, "no such upscaler file") }
        let tensors: [String: Tensor]
        switch url.pathExtension.lowercased() {
        case "safetensors": tensors = try SafeTensorsFile(url: url).allTensors()
        case "pth", "pt", "ckpt": tensors = try TorchCheckpoint.load(url)
        default: throw UpscalerError(url.path, "unknown upscaler format: expected a .pth or .safetensors file")
        }
        return try Upscaler(weights: tensors, source: url.path)
    }

    /// Output pixels per input pixel along each side.
    public var scale: Int {
        switch network {
        case .rrdb(let net): return net.scale
        case .compact(let net): return net.scale
        }
    }

    /// Image channels the model takes and gives (3 for RGB models).
    public var channels: Int {
        switch network {
        case .rrdb(let net): return net.channels
        case .compact(let net): return net.channels
        }
    }

    /// The input size a side must be a multiple of for the network to see it unpadded (the pixel-unshuffle factor).
    var multiple: Int {
        if case .rrdb(let net) = network { return net.unshuffle ?? 1 }
        return 1
    }

    /// The whole image [N, C, H, W] in [0, 1] upscaled at once: [N, C, s·H, s·W] (memory grows with the image; see
    /// `upscaleTiled`).
    public func upscale(_ image: Tensor) -> Tensor {
        precondition(image.rank == 4 && image.shape[1] == channels, "the upscaler takes [N, \(channels), H, W], got \(image.shape)")
        switch network {
        case .rrdb(let net): return net(image)
        case .compact(let net): return net(image)
        }
    }
}
