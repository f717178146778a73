import Tensors

/// How SDXL's single files (Stability's SGM layout, `sd_xl_base_1.0.safetensors` and the models merged from it) name
/// their tensors: the UNet and VAE as in LDM files plus the added embedding, and the text encoders under
/// `conditioner.embedders.N`.
extension CheckpointKeys {
    /// SDXL base: CLIP ViT-L in transformers' layout (`text_model.…`).
    public static let sgmCLIPPrefix = "conditioner.embedders.0.transformer."
    /// SDXL base: OpenCLIP ViT-bigG in OpenCLIP's layout (fused q/k/v, `text_projection` as x @ P).
    public static let sgmBigGPrefix = "conditioner.embedders.1.model."
    /// SDXL refiner: its only encoder, OpenCLIP ViT-bigG, comes first.
    public static let sgmRefinerBigGPrefix = "conditioner.embedders.0.model."

    /// The SGM text-encoder prefixes, which tell an SDXL single file from an SD 1.x/2.x one.
    static let sgmTextPrefixes = [sgmCLIPPrefix, sgmBigGPrefix, sgmRefinerBigGPrefix]

    /// SGM UNet names (prefix removed) of the added (`text_time`) embedding → diffusers' names.
    static let addedEmbeddingNames: [(String, String)] = [
        ("label_emb.0.0.", "add_embedding.linear_1."), ("label_emb.0.2.", "add_embedding.linear_2."),
    ]

    /// Whether `key` belongs to one of SDXL's text encoders, and so the file to the SGM layout.
    public static func isSGM(_ key: String) -> Bool {
        sgmTextPrefixes.contains { key.hasPrefix($0) }
    }

    /// Maps one SGM UNet key (prefix removed) to diffusers' name: the added embedding, else as in LDM files.
    public static func sgmUNetName(_ key: String, layersPerBlock: Int) -> String? {
        for (old, new) in addedEmbeddingNames where key.hasPrefix(old) { return new + key.dropFirst(old.count) }
        return unetName(key, layersPerBlock: layersPerBlock)
    }

    /// Converts an OpenCLIP ViT-bigG tower (prefix removed) to CLIPTextModelWithProjection names, keeping every layer
    /// (the pooled output comes from the last one; SDXL takes the penultimate hidden states itself). OpenCLIP applies
    /// `text_projection` [width, projection] as x @ P; transformers' `text_projection.weight` is its transpose.
    public static func bigGTensors(_ source: [String: Tensor], layers: Int) -> [String: Tensor] {
        var result = openCLIPTensors(source, layers: layers)
        if let projection = source["text_projection"], projection.rank == 2 {
            result["text_projection.weight"] = projection.transposed(0, 1)
        }
        return result
    }
}
