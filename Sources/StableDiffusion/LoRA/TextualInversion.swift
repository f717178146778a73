import Foundation
import Tensors

/// A textual-inversion embedding: vectors that stand in for its name in a prompt, one token position each.
public struct TextualInversion {
    /// The first token id of added vectors: CLIP's (and OpenCLIP's) vocabulary size, as diffusers numbers the tokens
    /// `load_textual_inversion` adds. Prompt chunks carry these ids; the text encoders read them from the added rows.
    public static let firstTokenID = 49408

    /// How a file stores its vectors.
    public enum Vectors {
        /// One text encoder's vectors [count, width] (SD 1.x/2.x files).
        case single(Tensor)
        /// SDXL's pair: [count, 768] for CLIP ViT-L and [count, 1280] for OpenCLIP ViT-bigG.
        case pair(clipL: Tensor, clipG: Tensor)
    }

    /// The name prompts use: the file's stem.
    public let name: String
    /// Where it was read from.
    public let url: URL
    /// The vectors.
    public let vectors: Vectors

    /// Token positions it takes.
    public var count: Int {
        switch vectors {
        case .single(let tensor): return tensor.shape[0]
        case .pair(let clipL, _): return clipL.shape[0]
        }
    }

    /// Reads a web-UI `.pt` (`string_to_param`), a `.safetensors` (`emb_params`, or SDXL's `clip_l`/`clip_g`) or a
    /// diffusers `learned_embeds` file (one tensor under the token's name); throws `AddOnFileError` naming the file.
    public static func load(_ url: URL) throws(AddOnFileError) -> TextualInversion {
        let tensors = try AddOnFiles.tensors(url, what: "embedding")
        func rows(_ tensor: Tensor, _ key: String) throws(AddOnFileError) -> Tensor {
            let tensor = tensor.widened()
            if tensor.rank == 1 { return tensor.reshaped([1, tensor.count]) }
            guard tensor.rank == 2, tensor.shape[0] > 0 else {
                throw AddOnFileError(.wrongShape, file: url.path, "\(key) has shape \(tensor.shape); an embedding is [vectors, width]")
            }
            return tensor
        }
        let vectors: Vectors
        if let clipL = tensors["clip_l"], let clipG = tensors["clip_g"] {
            let (l, g) = (try rows(clipL, "clip_l"), try rows(clipG, "clip_g"))
            guard l.shape[0] == g.shape[0] else {
                throw AddOnFileError(.wrongShape, file: url.path, "clip_l has \(l.shape[0]) vectors but clip_g \(g.shape[0])")
            }
            vectors = .pair(clipL: l, clipG: g)
        } else if let key = ["emb_params", "*"].first(where: { tensors[$0] != nil }) {
            vectors = .single(try rows(tensors[key]!, key))
        } else if tensors.count == 1, let (key, tensor) = tensors.first {
            vectors = .single(try rows(tensor, key))
        } else {
            throw AddOnFileError(
                tensors.isEmpty ? .empty : .unknownKeys, file: url.path,
                "holds \(tensors.keys.sorted().prefix(4)) where an embedding has string_to_param (web UI .pt), emb_params, "
                    + "clip_l/clip_g (SDXL) or one learned_embeds tensor")
        }
        return TextualInversion(name: url.deletingPathExtension().lastPathComponent, url: url, vectors: vectors)
    }

    /// The vectors for text encoders of `widths` (one per encoder, in order): SD 1.x/2.x take a single set, SDXL base
    /// the clip_l and clip_g pair, the refiner (bigG alone) the pair's clip_g. Throws `wrongArchitecture` when the
    /// embedding was made for another model.
    public func rows(forEncoderWidths widths: [Int]) throws(AddOnFileError) -> [Tensor] {
        let chosen: [Tensor]
        switch vectors {
        case .single(let tensor):
            guard widths.count == 1 else {
                throw AddOnFileError(
                    .wrongArchitecture, file: url.path,
                    "an embedding of one \(tensor.shape[1])-wide set (SD 1.x/2.x); an SDXL model needs clip_l and clip_g vectors")
            }
            chosen = [tensor]
        case .pair(let clipL, let clipG):
            chosen = widths.count == 2 ? [clipL, clipG] : [widths.first == clipL.shape[1] ? clipL : clipG]
        }
        for (tensor, width) in zip(chosen, widths) where tensor.shape[1] != width {
            throw AddOnFileError(
                .wrongArchitecture, file: url.path,
                "its vectors are \(tensor.shape[1]) wide but the text encoder takes \(width) (768: SD 1.x, 1024: SD 2.x, "
                    + "768 + 1280: SDXL); it was made for another model")
        }
        return chosen
    }
}
