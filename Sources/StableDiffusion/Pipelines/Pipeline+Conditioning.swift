import Foundation
import Tensors

/// What the text contributes to the UNet: the cross-attention context and, for SDXL, the pooled text vector.
public struct TextConditioning {
    /// [1, 77·chunks, width]: the encoders' hidden states (SDXL: both encoders' side by side).
    public var context: Tensor
    /// SDXL: [1, projection width], the second encoder's projected pooled output of the first chunk; nil otherwise.
    public var pooled: Tensor?

    /// Wraps encodings.
    public init(context: Tensor, pooled: Tensor? = nil) {
        self.context = context
        self.pooled = pooled
    }

    /// The same shapes, all zeros: SDXL's unconditional side for an empty negative prompt.
    var zeros: TextConditioning {
        TextConditioning(context: Tensor(zeros: context.shape), pooled: pooled.map { Tensor(zeros: $0.shape) })
    }
}

/// Prompts to conditioning: the web UIs' syntax (weights, BREAK, 75-token chunks) over one text encoder (SD 1.x/2.x)
/// or two side by side (SDXL), and SDXL's added conditioning (pooled text and micro-conditioning numbers).
extension Pipeline {
    /// Encodes a prompt and a negative prompt with the web UIs' syntax (weights, BREAK,
    /// 75-token chunks); the shorter side is padded with empty chunks so both have the
    /// same length. Returns [1, 77·chunks, width] conditional and unconditional encodings (with SDXL's pooled
    /// vectors; an empty negative prompt is all zeros where the model says so, as diffusers and the web UI do).
    public func encodePrompts(
        _ prompt: String, negative: String, clipSkip: Int = 1,
        tokenizer: CLIPTokenizer? = nil
    ) throws -> (conditional: TextConditioning, unconditional: TextConditioning) {
        let tokenizer = try tokenizer ?? CLIPTokenizer.shared()
        let conditional: TextConditioning
        let unconditional: TextConditioning
        if unet.config.isXL {
            conditional = try encode(prompt, clipSkip: clipSkip, tokenizer: tokenizer)
            if negative.isEmpty, forceZerosForEmptyPrompt { return (conditional, conditional.zeros) }
            unconditional = try encode(negative, clipSkip: clipSkip, tokenizer: tokenizer)
        } else {
            // Both prompts in one batch: the encoder's weights are read once for the two.
            let chunks = try [prompt, negative].map { try self.chunks($0, tokenizer: tokenizer)[0] }
            let contexts = textEncoder.encode(
                prompts: chunks.map { ($0.tokens, $0.weights) }, clipSkip: clipSkip, extra: embeddings?.rows(encoder: 0))
            (conditional, unconditional) = (TextConditioning(context: contexts[0]), TextConditioning(context: contexts[1]))
        }
        let tokens = max(conditional.context.shape[1], unconditional.context.shape[1])
        guard conditional.context.shape[1] != unconditional.context.shape[1] else { return (conditional, unconditional) }
        let empty = try encode("", clipSkip: clipSkip, tokenizer: tokenizer).context
        func padded(_ side: TextConditioning) -> TextConditioning {
            var side = side
            while side.context.shape[1] < tokens { side.context = Tensor.concat([side.context, empty], axis: 1) }
            return side
        }
        return (padded(conditional), padded(unconditional))
    }

    /// This pipeline reading the embeddings of `folders` that `prompts` name (web UI: `--embeddings-dir`); throws
    /// `AddOnFileError` for an unreadable file or one made for another model.
    public func usingEmbeddings(from folders: [URL], for prompts: [String], tokenizer: CLIPTokenizer? = nil) throws -> Pipeline {
        var pipeline = self
        let found = try PromptEmbeddings.named(in: prompts, folders: folders)
        guard !found.isEmpty else { return pipeline }
        pipeline.embeddings = try PromptEmbeddings(
            found, encoderWidths: textEncoders.map(\.config.hiddenSize), tokenizer: try tokenizer ?? CLIPTokenizer.shared())
        return pipeline
    }

    /// One prompt through every text encoder, each with its own padding; the chunk lists are evened out with
    /// empty chunks (a "!" is one token for a "!"-padding tokenizer, so the two may chunk differently).
    func encode(_ text: String, clipSkip: Int, tokenizer: CLIPTokenizer) throws -> TextConditioning {
        let chunked = try chunks(text, tokenizer: tokenizer)
        guard unet.config.isXL else {
            return TextConditioning(
                context: textEncoder.encode(
                    chunks: chunked[0].tokens, weights: chunked[0].weights, clipSkip: clipSkip, extra: embeddings?.rows(encoder: 0)))
        }
        return encodeXL(tokens: chunked.map(\.tokens), weights: chunked.map(\.weights), clipSkip: clipSkip)
    }

    /// One prompt's chunks for every text encoder, each with its own padding, evened out with empty chunks; throws
    /// for a token outside an encoder's vocabulary.
    func chunks(_ text: String, tokenizer: CLIPTokenizer) throws -> [PromptChunks] {
        var chunked = try paddings.map { padding in
            var chunker = PromptChunker(tokenizer: tokenizer, padding: padding)
            chunker.embeddings = embeddings
            return try chunker.chunks(for: text)
        }
        let count = chunked.map(\.tokens.count).max() ?? 0
        for index in chunked.indices {
            let empty = try PromptChunker(tokenizer: tokenizer, padding: paddings[index]).chunks(for: "")
            while chunked[index].tokens.count < count {
                chunked[index].tokens += empty.tokens
                chunked[index].weights += empty.weights
            }
        }
        for (index, (encoder, chunks)) in zip(textEncoders, chunked).enumerated() {
            let vocabulary = encoder.config.vocabSize
            let added = embeddings?.rows(encoder: index) != nil
            if let id = chunks.tokens.joined().first(where: { $0 >= vocabulary && !(added && $0 >= TextualInversion.firstTokenID) }) {
                throw SamplingError(
                    "token id \(id) is outside this text encoder's \(vocabulary)-token vocabulary; the model is not a CLIP text encoder")
            }
        }
        return chunked
    }

    /// SDXL's encoding of token chunks, one list per text encoder: each chunk's penultimate hidden states (clip skip
    /// 1; n goes n − 1 layers further down, as diffusers' `clip_skip`), weighted the web UI's way per encoder, the
    /// encoders side by side, chunks along the tokens; the pooled vector from the last encoder's first chunk.
    public func encodeXL(tokens: [[[Int]]], weights: [[[Float]]]? = nil, clipSkip: Int = 1) -> TextConditioning {
        precondition(tokens.count == textEncoders.count, "one chunk list per text encoder")
        var pooled: Tensor?
        let chunks = tokens[0].indices.map { chunk -> Tensor in
            let parts = textEncoders.indices.map { index -> Tensor in
                let (hidden, pool) = textEncoders[index].encodeXL(
                    [tokens[index][chunk]], skip: max(1, clipSkip), extra: embeddings?.rows(encoder: index))
                if chunk == 0, let pool { pooled = pool }
                guard let row = weights?[index][chunk] else { return hidden }
                return TextEncoder.weighted(hidden, by: row)
            }
            return Tensor.concat(parts, axis: 2)
        }
        return TextConditioning(context: Tensor.concat(chunks, axis: 1), pooled: pooled)
    }

    /// SDXL's added conditioning of one UNet call, rows in the order of `textContext`: the base's numbers are the
    /// original size, the crop's top-left corner and the target size (height before width, both the render size,
    /// crop 0, as diffusers defaults them); the refiner's end in an aesthetic score (6 for the prompt, 2.5 for the
    /// negative prompt) instead of the target size. nil for SD 1.x/2.x.
    public func addedConditioning(conditional: TextConditioning, unconditional: TextConditioning, settings: Settings) throws
        -> AddedConditioning?
    {
        guard let embedding = unet.addedEmbedding else { return nil }
        guard let positive = conditional.pooled, let negative = unconditional.pooled else {
            throw SamplingError("an SDXL UNet needs pooled text from a text encoder with a projection (text_encoder_2)")
        }
        let size = [Float(settings.height), Float(settings.width), 0, 0]
        let aesthetic = embedding.takesAestheticScore(pooledWidth: positive.shape[1])
        let ids = aesthetic ? size + [settings.aestheticScore] : size + [Float(settings.height), Float(settings.width)]
        let negativeIDs = aesthetic ? size + [settings.negativeAestheticScore] : ids
        guard embedding.pooledWidth(numbers: ids.count) == positive.shape[1] else {
            throw SamplingError(
                "the UNet's added embedding takes \(embedding.pooledWidth(numbers: ids.count)) pooled values, the text encoder gives \(positive.shape[1])"
            )
        }
        let rows = Array(repeating: positive, count: settings.batch)
        let rowIDs = Array(repeating: ids, count: settings.batch)
        guard settings.guidance > 1 else { return AddedConditioning(pooled: Tensor.concat(rows, axis: 0), timeIDs: rowIDs) }
        return AddedConditioning(
            pooled: Tensor.concat(Array(repeating: negative, count: settings.batch) + rows, axis: 0),
            timeIDs: Array(repeating: negativeIDs, count: settings.batch) + rowIDs)
    }
}
