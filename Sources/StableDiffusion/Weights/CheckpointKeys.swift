import Tensors

/// The one place that knows how single-file checkpoints (the CompVis/LDM layout most
/// downloads use) name their tensors, and maps them to the engine's names, which are
/// diffusers' (text encoder names without transformers' `text_model.` prefix).
public enum CheckpointKeys {
    /// Prefixes of each component inside an LDM single file.
    public static let unetPrefix = "model.diffusion_model."
    /// The VAE's prefix.
    public static let vaePrefix = "first_stage_model."
    /// SD 1.x: OpenAI CLIP through transformers.
    public static let clipPrefix = "cond_stage_model.transformer."
    /// SD 2.x: OpenCLIP's own layout with fused attention projections.
    public static let openCLIPPrefix = "cond_stage_model.model."

    /// Whether the engine reads `key` of a single file: the UNet, VAE and text encoders (LDM's `cond_stage_model.*`,
    /// SDXL's `conditioner.embedders.*`), but not the VAE's training loss (`first_stage_model.loss.*`), CLIP's
    /// `position_ids` buffer nor OpenCLIP's contrastive `logit_scale`. Everything else a download may hold
    /// (`model_ema.*`, `betas`, `alphas_cumprod*`, `logvar`, …) is left unread.
    public static func isUsed(_ key: String) -> Bool {
        if key.hasSuffix("position_ids") || key.hasSuffix("logit_scale") || key.hasPrefix(vaePrefix + "loss.") { return false }
        return key.hasPrefix(unetPrefix) || key.hasPrefix(vaePrefix) || key.hasPrefix(clipPrefix)
            || key.hasPrefix(openCLIPPrefix) || isSGM(key)
    }

    /// LDM ResBlock names → diffusers ResnetBlock2D names.
    static let resnetNames: [(String, String)] = [
        ("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."),
    ]

    /// LDM VAE attention names → diffusers Attention names.
    static let vaeAttentionNames: [(String, String)] = [
        ("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0."),
    ]

    static func renamed(_ rest: String, _ table: [(String, String)]) -> String {
        for (old, new) in table where rest.hasPrefix(old) { return new + rest.dropFirst(old.count) }
        return rest
    }

    /// Splits "a.b.rest" into its first two numeric-or-name parts and the rest.
    private static func parts(_ key: Substring, _ count: Int) -> ([Substring], Substring)? {
        var pieces: [Substring] = []
        var rest = key
        for _ in 0..<count {
            guard let dot = rest.firstIndex(of: ".") else { return nil }
            pieces.append(rest[..<dot])
            rest = rest[rest.index(after: dot)...]
        }
        return (pieces, rest)
    }

    /// Maps one UNet key (prefix removed) to diffusers' name; nil for keys the engine does not use.
    public static func unetName(_ key: String, layersPerBlock: Int) -> String? {
        let per = layersPerBlock + 1
        for (old, new) in [
            ("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
            ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
        ]
        where key.hasPrefix(old) {
            return new + key.dropFirst(old.count)
        }
        if key.hasPrefix("input_blocks."), let (p, rest) = parts(key.dropFirst("input_blocks.".count), 2),
            let i = Int(p[0]), let j = Int(p[1]), i >= 1
        {
            let block = (i - 1) / per
            let layer = (i - 1) % per
            if layer == layersPerBlock {
                guard rest.hasPrefix("op.") else { return nil }
                return "down_blocks.\(block).downsamplers.0.conv." + rest.dropFirst(3)
            }
            return j == 0
                ? "down_blocks.\(block).resnets.\(layer)." + renamed(String(rest), resnetNames)
                : "down_blocks.\(block).attentions.\(layer)." + rest
        }
        if key.hasPrefix("middle_block."), let (p, rest) = parts(key.dropFirst("middle_block.".count), 1), let j = Int(p[0]) {
            switch j {
            case 0: return "mid_block.resnets.0." + renamed(String(rest), resnetNames)
            case 1: return "mid_block.attentions.0." + rest
            default: return "mid_block.resnets.1." + renamed(String(rest), resnetNames)
            }
        }
        if key.hasPrefix("output_blocks."), let (p, rest) = parts(key.dropFirst("output_blocks.".count), 2),
            let i = Int(p[0]), let j = Int(p[1])
        {
            let block = i / per
            let layer = i % per
            if j == 0 { return "up_blocks.\(block).resnets.\(layer)." + renamed(String(rest), resnetNames) }
            // Index 1 is the transformer, or the upsampler in blocks without attention.
            if rest.hasPrefix("conv.") { return "up_blocks.\(block).upsamplers.0." + rest }
            return "up_blocks.\(block).attentions.\(layer)." + rest
        }
        return nil
    }

    /// Maps one VAE key (prefix removed) to diffusers' name; `levels` is the number of resolution levels.
    public static func vaeName(_ key: String, levels: Int) -> String? {
        for side in ["encoder.", "decoder."] where key.hasPrefix(side) {
            let body = key.dropFirst(side.count)
            if body.hasPrefix("norm_out.") { return side + "conv_norm_out." + body.dropFirst("norm_out.".count) }
            if body.hasPrefix("mid.block_1.") { return side + "mid_block.resnets.0." + nin(body.dropFirst("mid.block_1.".count)) }
            if body.hasPrefix("mid.block_2.") { return side + "mid_block.resnets.1." + nin(body.dropFirst("mid.block_2.".count)) }
            if body.hasPrefix("mid.attn_1.") {
                return side + "mid_block.attentions.0." + renamed(String(body.dropFirst("mid.attn_1.".count)), vaeAttentionNames)
            }
            for (level, blocks) in [("down.", "down_blocks."), ("up.", "up_blocks.")] where body.hasPrefix(level) {
                guard let (p, rest) = parts(body.dropFirst(level.count), 2), let i = Int(p[0]) else { return nil }
                let index = level == "up." ? levels - 1 - i : i
                switch p[1] {
                case "block":
                    guard let (q, tail) = parts(rest, 1) else { return nil }
                    return side + blocks + "\(index).resnets.\(q[0])." + nin(tail)
                case "downsample": return side + blocks + "\(index).downsamplers.0." + rest
                case "upsample": return side + blocks + "\(index).upsamplers.0." + rest
                default: return nil
                }
            }
            return key
        }
        return key
    }

    private static func nin(_ rest: Substring) -> String {
        rest.hasPrefix("nin_shortcut.") ? "conv_shortcut." + rest.dropFirst("nin_shortcut.".count) : String(rest)
    }

    /// Maps a CLIP text-encoder key (prefix removed) to the engine's name (no `text_model.`).
    public static func clipName(_ key: String) -> String? {
        let name = key.hasPrefix("text_model.") ? String(key.dropFirst("text_model.".count)) : key
        return name.hasSuffix("position_ids") ? nil : name
    }

    /// Converts OpenCLIP text-tower tensors (prefix removed) to CLIP names, splitting
    /// the fused `in_proj` into q/k/v; keeps only `layers` transformer layers.
    public static func openCLIPTensors(_ source: [String: Tensor], layers: Int) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (key, tensor) in source {
            switch key {
            case "token_embedding.weight": result["embeddings.token_embedding.weight"] = tensor
            case "positional_embedding": result["embeddings.position_embedding.weight"] = tensor
            case "ln_final.weight": result["final_layer_norm.weight"] = tensor
            case "ln_final.bias": result["final_layer_norm.bias"] = tensor
            default:
                guard key.hasPrefix("transformer.resblocks."),
                    let (p, rest) = parts(key.dropFirst("transformer.resblocks.".count), 1),
                    let layer = Int(p[0]), layer < layers
                else { continue }
                let target = "encoder.layers.\(layer)."
                switch rest {
                case "attn.in_proj_weight", "attn.in_proj_bias":
                    let suffix = rest.hasSuffix("weight") ? "weight" : "bias"
                    for (name, part) in zip(["q_proj", "k_proj", "v_proj"], tensor.chunked(3, axis: 0)) {
                        result[target + "self_attn.\(name).\(suffix)"] = part
                    }
                default:
                    let table: [(String, String)] = [
                        ("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."),
                        ("attn.out_proj.", "self_attn.out_proj."),
                        ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2."),
                    ]
                    let renamedKey = renamed(String(rest), table)
                    if renamedKey != String(rest) { result[target + renamedKey] = tensor }
                }
            }
        }
        return result
    }
}
