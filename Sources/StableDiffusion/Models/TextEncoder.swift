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
        guard ["quick_gelu", "gelu"].contains(config.hiddenAct) else {
            throw WeightsError(source, "text encoder activation \(config.hiddenAct) is not supported (quick_gelu, gelu)")
        }
    }

    /// Encodes token ids [B][N] (N ≤ max positions) to hidden states [B, N, hidden].
    /// `clipSkip` counts as the web UIs do: 1 = last layer, 2 = penultimate, …; the
    /// chosen layer's output always goes through the final layer norm.
    public func callAsFunction(_ ids: [[Int]], clipSkip: Int = 1) -> Tensor {
        let batch = ids.count
        let length = ids.first?.count ?? 0
        precondition(
            ids.allSatisfy { $0.count == length } && length <= config.maxPositionEmbeddings,
            "token rows must share one length of at most \(config.maxPositionEmbeddings)")
        let tokens = Tensor.embedding(table: tokenEmbedding, ids: ids.flatMap { $0 }).reshaped([batch, length, config.hiddenSize])
        let positions = positionEmbedding.slice(axis: 0, range: 0..<length).reshaped([1, length, config.hiddenSize])
        var hidden = tokens + positions
        let run = max(1, layers.count - max(0, clipSkip - 1))
        for layer in layers.prefix(run) {
            hidden.add(layer.attention(layer.norm1(hidden), causal: true))
            let expanded = layer.fc1(layer.norm2(hidden))
            let activated = config.hiddenAct == "gelu" ? expanded.gelu() : expanded.quickGelu()
            hidden.add(layer.fc2(activated))
        }
        return finalNorm(hidden)
    }

    /// Encodes prompt chunks of 77 ids with per-token weights the A1111 way: each
    /// chunk's hidden states are scaled by their token weights, then rescaled so that
    /// the chunk's mean is unchanged; the chunks are joined along the token axis.
    public func encode(chunks: [[Int]], weights: [[Float]], clipSkip: Int = 1) -> Tensor {
        precondition(chunks.count == weights.count && !chunks.isEmpty, "one weight row per chunk, at least one chunk")
        let encoded = chunks.indices.map { index -> Tensor in
            let hidden = self([chunks[index]], clipSkip: clipSkip)
            guard weights[index].contains(where: { $0 != 1 }) else { return hidden }
            let originalMean = hidden.mean()
            let scale = Tensor(shape: [1, weights[index].count, 1], values: weights[index])
            let weighted = hidden * scale
            return weighted.scaled(by: originalMean / weighted.mean())
        }
        return Tensor.concat(encoded, axis: 1)
    }
}
