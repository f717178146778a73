import Tensors

/// The CLIP text transformer: OpenAI CLIP (SD 1.x, quick-GELU) or the OpenCLIP text
/// tower (SD 2.x, GELU), pre-norm layers with causal self-attention.
public struct TextEncoder {
    struct Layer {
        let norm1: LayerNorm, attention: MultiHeadAttention, norm2: LayerNorm, fc1: Linear, fc2: Linear
    }

    /// The settings it was built with.
    public let config: TextEncoderConfig
    let tokenEmbedding: Tensor
    let positionEmbedding: Tensor
    let layers: [Layer]
    let finalNorm: LayerNorm
    /// CLIPTextModelWithProjection's `text_projection` (SDXL's second encoder): maps the pooled output to the
    /// conditioning vector; nil for plain CLIPTextModel weights.
    let projection: Linear?
    /// The Vulkan device its forward runs on (nil: the CPU); inputs move there and results back, weights are copied
    /// to it as float16 on first use.
    public var device: VulkanDevice?

    /// Builds the encoder from weights named as in `ModelWeights.textEncoder`.
    public init(config: TextEncoderConfig, weights: [String: Tensor], source: String = "text encoder") throws {
        self.config = config
        let reader = WeightReader(weights, source: source)
        tokenEmbedding = try reader.stored("embeddings.token_embedding.weight", shape: [config.vocabSize, config.hiddenSize])
        positionEmbedding = try reader.tensor(
            "embeddings.position_embedding.weight",
            shape: [config.maxPositionEmbeddings, config.hiddenSize])
        let eps = Float(config.layerNormEps)
        layers = try (0..<config.numHiddenLayers).map { index in
            let layer = reader.scope("encoder.layers.\(index)")
            return Layer(
                norm1: try LayerNorm(layer, "layer_norm1", epsilon: eps),
                attention: try MultiHeadAttention(clip: layer.scope("self_attn"), heads: config.numAttentionHeads),
                norm2: try LayerNorm(layer, "layer_norm2", epsilon: eps),
                fc1: try Linear(layer, "mlp.fc1", inputs: config.hiddenSize, outputs: config.intermediateSize),
                fc2: try Linear(layer, "mlp.fc2", inputs: config.intermediateSize, outputs: config.hiddenSize))
        }
        finalNorm = try LayerNorm(reader, "final_layer_norm", epsilon: eps)
        projection =
            reader.has("text_projection.weight")
            ? try Linear(reader, "text_projection", inputs: config.hiddenSize, bias: false) : nil
        guard ["quick_gelu", "gelu"].contains(config.hiddenAct) else {
            throw WeightsError(source, "text encoder activation \(config.hiddenAct) is not supported (quick_gelu, gelu)")
        }
    }

    /// Encodes token ids [B][N] (N ≤ max positions) to hidden states [B, N, hidden]; ids from
    /// `TextualInversion.firstTokenID` on are rows of `extra` (embeddings' vectors).
    /// `clipSkip` counts as the web UIs do: 1 = last layer, 2 = penultimate, …; the
    /// chosen layer's output always goes through the final layer norm.
    public func callAsFunction(_ ids: [[Int]], clipSkip: Int = 1, extra: Tensor? = nil) -> Tensor {
        var hidden = embed(ids, extra: extra).moved(to: device)
        for layer in layers.prefix(max(1, layers.count - max(0, clipSkip - 1))) { hidden = run(layer, hidden) }
        return finalNorm(hidden).moved(to: nil)
    }

    /// SDXL's encoding of token ids [B][N]: the hidden states `skip` layers below the top without the final norm
    /// (diffusers' `hidden_states[-(skip + 1)]`; SDXL conditions on skip 1, the penultimate layer) and, when the
    /// encoder has a projection, the projected pooled output [B, projection] (the final-normed last layer at the
    /// end token, as transformers' CLIPTextModelWithProjection `text_embeds`).
    public func encodeXL(_ ids: [[Int]], skip: Int = 1, extra: Tensor? = nil) -> (hidden: Tensor, pooled: Tensor?) {
        var hidden = embed(ids, extra: extra).moved(to: device)
        let keep = max(0, layers.count - max(1, skip))
        var kept = hidden
        for (index, layer) in layers.enumerated() {
            if index == keep { kept = hidden }
            if index >= keep && projection == nil { break }
            hidden = run(layer, hidden)
        }
        guard let projection else { return (kept.moved(to: nil), nil) }
        let normed = finalNorm(hidden)
        let rows = ids.enumerated().map { row, tokens in
            normed.slice(axis: 0, range: row..<(row + 1)).slice(axis: 1, range: poolPosition(tokens)..<(poolPosition(tokens) + 1))
        }
        let pooled = projection(Tensor.concat(rows, axis: 0).reshaped([ids.count, config.hiddenSize]))
        return (kept.moved(to: nil), pooled.moved(to: nil))
    }

    /// The token position transformers pools at: with the original configs' end id 2, the highest id's first
    /// position (the end token is the vocabulary's last); otherwise the end id's first position (0 if absent).
    func poolPosition(_ tokens: [Int]) -> Int {
        if config.eosTokenID == 2 {
            return tokens.indices.max { tokens[$0] < tokens[$1] } ?? 0  // the first of equal maxima, as torch's argmax
        }
        return tokens.firstIndex(of: config.eosTokenID) ?? 0
    }

    /// Token plus position embeddings of ids [B][N]; ids from `TextualInversion.firstTokenID` on are rows of `extra`.
    private func embed(_ ids: [[Int]], extra: Tensor?) -> Tensor {
        let batch = ids.count
        let length = ids.first?.count ?? 0
        precondition(
            ids.allSatisfy { $0.count == length } && length <= config.maxPositionEmbeddings,
            "token rows must share one length of at most \(config.maxPositionEmbeddings)")
        let tokens = Tensor.embedding(table: tokenEmbedding, ids: ids.flatMap { $0 }, extra: extra, firstExtraID: TextualInversion.firstTokenID)
            .reshaped([batch, length, config.hiddenSize])
        let positions = positionEmbedding.slice(axis: 0, range: 0..<length).reshaped([1, length, config.hiddenSize])
        return tokens + positions
    }

    /// One pre-norm layer: causal self-attention, then the MLP, each added to the residual stream.
    private func run(_ layer: Layer, _ input: Tensor) -> Tensor {
        var hidden = input
        hidden.add(layer.attention(layer.norm1(hidden), causal: true))
        let expanded = layer.fc1(layer.norm2(hidden))
        let activated = config.hiddenAct == "gelu" ? expanded.gelu() : expanded.quickGelu()
        hidden.add(layer.fc2(activated))
        return hidden
    }

    /// Encodes prompt chunks of 77 ids with per-token weights the A1111 way: each
    /// chunk's hidden states are scaled by their token weights, then rescaled so that
    /// the chunk's mean is unchanged; the chunks are joined along the token axis.
    public func encode(chunks: [[Int]], weights: [[Float]], clipSkip: Int = 1, extra: Tensor? = nil) -> Tensor {
        encode(prompts: [(chunks, weights)], clipSkip: clipSkip, extra: extra)[0]
    }

    /// `encode(chunks:weights:)` of several prompts (a prompt and its negative prompt) as one batch of all their
    /// chunks: over 77-token rows a layer is bound by reading its weights, so one pass for every chunk costs little
    /// more than one for a single chunk.
    public func encode(prompts: [(chunks: [[Int]], weights: [[Float]])], clipSkip: Int = 1, extra: Tensor? = nil) -> [Tensor] {
        for prompt in prompts {
            precondition(
                prompt.chunks.count == prompt.weights.count && !prompt.chunks.isEmpty, "one weight row per chunk, at least one chunk")
        }
        let hidden = self(prompts.flatMap(\.chunks), clipSkip: clipSkip, extra: extra)
        var row = 0
        return prompts.map { prompt in
            let encoded = prompt.weights.map { weights in
                defer { row += 1 }
                return Self.weighted(hidden.slice(axis: 0, range: row..<(row + 1)), by: weights)
            }
            return Tensor.concat(encoded, axis: 1)
        }
    }

    /// One chunk's hidden states [1, N, width] scaled by its token weights, then rescaled so that the mean is
    /// unchanged (the web UI's emphasis); unchanged when every weight is 1.
    static func weighted(_ hidden: Tensor, by weights: [Float]) -> Tensor {
        guard weights.contains(where: { $0 != 1 }) else { return hidden }
        let originalMean = hidden.mean()
        let weighted = hidden * Tensor(shape: [1, weights.count, 1], values: weights)
        return weighted.scaled(by: originalMean / weighted.mean())
    }
}
