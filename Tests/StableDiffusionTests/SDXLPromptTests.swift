import Foundation
import StableDiffusion
import Tensors
import Testing

/// The tiny SDXL (or its refiner) with both text encoders' token tables widened to CLIP's 49408 tokens (random
/// rows), so that real prompts tokenize.
private func fullVocabularyPipeline(_ name: String = "tiny-sdxl") throws -> Pipeline {
    var weights = try ModelWeights.load(modelFixtures.appendingPathComponent(name))
    var state: UInt32 = 7
    func widened(_ encoder: inout [String: Tensor], _ config: inout TextEncoderConfig) {
        let width = config.hiddenSize
        encoder["embeddings.token_embedding.weight"] = Tensor(
            shape: [49408, width],
            values: (0..<(49408 * width)).map { _ in
                state = state &* 1_664_525 &+ 1_013_904_223
                return (Float(state >> 8) / Float(1 << 24) - 0.5) * 0.4
            })
        config.vocabSize = 49408
    }
    widened(&weights.textEncoder, &weights.textEncoderConfig)
    if var second = weights.textEncoder2 {
        widened(&second.weights, &second.config)
        weights.textEncoder2 = second
    }
    return try Pipeline(weights: weights)
}

@Test func sdxlLongPromptsChunkOverBothEncodersAndPoolTheFirstChunk() throws {
    let pipeline = try fullVocabularyPipeline()
    let words = (0..<90).map { ["fox", "snow", "forest", "light"][$0 % 4] }.joined(separator: " ")
    let (conditional, unconditional) = try pipeline.encodePrompts(words, negative: "blurry")
    #expect(conditional.context.shape == [1, 154, 80] && unconditional.context.shape == [1, 154, 80])
    // The pooled vector is the second encoder's projection of the first chunk alone.
    let tokenizer = try CLIPTokenizer.shared()
    let chunks = try pipeline.paddings.map { try PromptChunker(tokenizer: tokenizer, padding: $0).chunks(for: words).tokens }
    let first = pipeline.encodeXL(tokens: chunks.map { [$0[0]] })
    let (pooled, firstPooled) = (try #require(conditional.pooled), try #require(first.pooled))
    #expect(pooled.scalars == firstPooled.scalars)
    #expect(conditional.context.slice(axis: 1, range: 0..<77).scalars == first.context.scalars)
    // The second encoder pads with `!` (0), the first with the end token.
    #expect(chunks[0][1].last == 49407 && chunks[1][1].last == 0)
}

@Test func sdxlWeightsScaleEachEncodersPartAndKeepItsMean() throws {
    let pipeline = try fullVocabularyPipeline()
    let plain = try pipeline.encodePrompts("a fox in snow", negative: "x").conditional.context
    let weighted = try pipeline.encodePrompts("a (fox:1.5) in snow", negative: "x").conditional.context
    #expect(plain.shape == weighted.shape && plain.scalars != weighted.scalars)
    for range in [0..<32, 32..<80] {
        let (a, b) = (plain.slice(axis: 2, range: range), weighted.slice(axis: 2, range: range))
        #expect(abs(a.mean() - b.mean()) < 1e-5 * max(1, abs(a.mean())), "each encoder's part keeps its mean")
        #expect(a.scalars != b.scalars)
    }
}

@Test func sdxlEmptyNegativeIsZerosForTheBaseAndEncodedForTheRefiner() throws {
    let base = try fullVocabularyPipeline()
    let (conditional, negative) = try base.encodePrompts("a fox", negative: "")
    #expect(negative.context.shape == conditional.context.shape && negative.context.absMax() == 0)
    let negativePooled = try #require(negative.pooled)
    #expect(negativePooled.absMax() == 0)
    let refiner = try fullVocabularyPipeline("tiny-sdxl-refiner")
    let (_, encoded) = try refiner.encodePrompts("a fox", negative: "")
    let encodedPooled = try #require(encoded.pooled)
    #expect(encoded.context.shape == [1, 77, 48] && encoded.context.absMax() > 0 && encodedPooled.absMax() > 0)
}
