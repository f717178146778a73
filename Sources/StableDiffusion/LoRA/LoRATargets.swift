import Tensors

/// Where a LoRA layer's name points in a model. The one place that knows the trainers' spellings: kohya/web UI
/// (`lora_unet_*` with diffusers' names for SD 1.x or SGM's for SDXL, `lora_te_*`, `lora_te1_*`/`lora_te2_*`) and
/// diffusers/PEFT (`unet.*`, `text_encoder.*`, `text_encoder_2.*`). Every spelling is matched against the model's own
/// weight names with dots turned into underscores, so names that contain underscores need no guessing.
struct LoRATargets {
    /// Per network: a weight's name with underscores for dots → its name (both without `.weight`).
    private var tables: [LoRAComponent: [String: String]] = [:]
    /// The model's family, for messages.
    let family: ModelFamily
    /// Layers per UNet level, which SGM block numbers need.
    let layersPerBlock: Int
    /// Whether the model has a second text encoder (SDXL base).
    let hasSecondEncoder: Bool

    /// The dense and convolution weights of every network of `model`.
    init(_ model: ModelWeights) {
        family = model.family
        layersPerBlock = model.unetConfig.layersPerBlock
        hasSecondEncoder = model.textEncoder2 != nil
        tables[.unet] = Self.table(model.unet)
        tables[.textEncoder] = Self.table(model.textEncoder)
        if let second = model.textEncoder2 { tables[.textEncoder2] = Self.table(second.weights) }
    }

    private static func table(_ weights: [String: Tensor]) -> [String: String] {
        var table: [String: String] = [:]
        for (name, tensor) in weights where name.hasSuffix(".weight") && (tensor.rank == 2 || tensor.rank == 4) {
            let layer = String(name.dropLast(".weight".count))
            table[layer.replacingOccurrences(of: ".", with: "_")] = layer
        }
        return table
    }

    /// The network and weight name (without `.weight`) a layer key names; nil when it names none of this model's.
    func locate(_ key: String) -> (LoRAComponent, String)? {
        let prefixes: [(String, LoRAComponent)] = [
            ("lora_unet_", .unet), ("lora_te1_", .textEncoder), ("lora_te2_", .textEncoder2), ("lora_te_", .textEncoder),
            ("unet.", .unet), ("base_model.model.", .unet), ("text_encoder_2.", .textEncoder2), ("text_encoder.", .textEncoder),
        ]
        guard let (prefix, component) = prefixes.first(where: { key.hasPrefix($0.0) }) else { return nil }
        var body = String(key.dropFirst(prefix.count)).replacingOccurrences(of: ".", with: "_")
        if body.hasPrefix("text_model_") { body.removeFirst("text_model_".count) }
        guard let table = tables[component] else { return nil }
        if let name = table[body] { return (component, name) }
        guard component == .unet, let sgm = sgmName(body), let name = table[sgm] else { return nil }
        return (component, name)
    }

    /// A UNet layer named the SGM/LDM way (`input_blocks_4_1_transformer_blocks_0_attn1_to_q`) in diffusers' name,
    /// underscored; nil when it is not such a name.
    private func sgmName(_ body: String) -> String? {
        let parts = body.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        var dotted: String
        var rest: ArraySlice<String>
        if parts.count >= 4, ["input", "output"].contains(parts[0]), parts[1] == "blocks", Int(parts[2]) != nil, Int(parts[3]) != nil {
            dotted = "\(parts[0])_blocks.\(parts[2]).\(parts[3])."
            rest = parts[4...]
        } else if parts.count >= 3, parts[0] == "middle", parts[1] == "block", Int(parts[2]) != nil {
            dotted = "middle_block.\(parts[2])."
            rest = parts[3...]
        } else if parts.count == 3, parts[0] == "time", parts[1] == "embed" {
            dotted = "time_embed.\(parts[2])."
            rest = []
        } else if parts.count == 4, parts[0] == "label", parts[1] == "emb" {
            dotted = "label_emb.\(parts[2]).\(parts[3])."
            rest = []
        } else if parts.count == 2, parts[0] == "out" {
            dotted = "out.\(parts[1])."
            rest = []
        } else {
            return nil
        }
        var inner = rest.joined(separator: "_")
        for layer in ["in_layers", "out_layers", "emb_layers"] where inner.hasPrefix(layer + "_") {
            inner = layer + "." + inner.dropFirst(layer.count + 1)
        }
        dotted += inner.isEmpty ? "weight" : inner + ".weight"
        guard let name = CheckpointKeys.sgmUNetName(dotted, layersPerBlock: layersPerBlock) else { return nil }
        return String(name.dropLast(".weight".count)).replacingOccurrences(of: ".", with: "_")
    }

    /// The error for layer keys that name no weight of this model: another family's LoRA when the keys say so,
    /// else the unknown keys.
    func placementError(_ keys: [String], file: String, total: Int) -> AddOnFileError {
        let model = family == .sdxl ? "SDXL" : family == .sdxlRefiner ? "an SDXL refiner" : family == .sd2 ? "SD 2.x" : "SD 1.x"
        if !hasSecondEncoder, keys.contains(where: { $0.hasPrefix("lora_te2_") || $0.hasPrefix("text_encoder_2.") }) {
            return AddOnFileError(
                .wrongArchitecture, file: file, "an SDXL LoRA (it patches a second text encoder); the model is \(model): use an SDXL model")
        }
        if keys.count * 2 > total {
            return AddOnFileError(
                .wrongArchitecture, file: file,
                "\(keys.count) of \(total) layers name no layer of this \(model) model (first: \(keys.sorted()[0])); the LoRA was made for another model family"
            )
        }
        return AddOnFileError(
            .unknownKeys, file: file,
            "\(keys.count) layer(s) name no layer of this \(model) model: \(keys.sorted().prefix(3).joined(separator: ", "))")
    }
}
