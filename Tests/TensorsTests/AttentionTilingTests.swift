import Tensors
import Testing

/// Tiles of a few rows (so that each thread runs many tiles with its own scratch)
/// give the same result as PyTorch.
@Test func smallTilesMatchPyTorch() {
    for fixture in Fixtures.cases where fixture.kind.hasPrefix("attention") {
        let expected = Fixtures.tensor(fixture.output)
        let input = fixture.inputs.mapValues(Fixtures.tensor)
        let actual = Tensor.attention(query: input["q"]!, key: input["k"]!, value: input["v"]!,
                                      heads: fixture.parameters["heads"]!.int,
                                      causal: fixture.kind == "attention_causal", tileScores: 700)
        #expect(actual.maxAbsDifference(expected) <= 1e-5 + 1e-4 * expected.absMax(), "\(fixture.name)")
    }
}

/// Attention over 4096 tokens never asks for the full tokens² score matrix.
@Test func attentionMemoryDoesNotGrowWithTokensSquared() {
    let tokens = 4096, channels = 64, heads = 2, tileScores = 1 << 16
    let q = Tensor(repeating: 0.01, shape: [1, tokens, channels])
    let statistics = BufferPool.track {
        _ = Tensor.attention(query: q, key: q, value: q, heads: heads, tileScores: tileScores)
    }
    // Output [1, tokens, channels] and per-thread scratch of one tile (+ its row sums).
    let scratch = ComputeThreads.count * (tileScores + tileScores / tokens)
    #expect(statistics.largestRequest <= max(tokens * channels, scratch))
    #expect(statistics.largestRequest < tokens * tokens * heads / 4,
            "largest buffer \(statistics.largestRequest) floats; the full scores would be \(tokens * tokens * heads)")
}

/// A sampling loop repeats the same shapes; from its second step on, every buffer comes from the pool.
@Test func repeatedStepsReuseBuffers() {
    let x = Tensor(repeating: 0.5, shape: [2, 8, 16, 16])
    let weight = Tensor(repeating: 0.01, shape: [8, 8, 3, 3])
    let gamma = Tensor(repeating: 1, shape: [8]), beta = Tensor(zeros: [8])
    func step() -> Float {
        let h = x.conv2d(weight: weight, padding: 1).groupNorm(groups: 4, weight: gamma, bias: beta).silu()
        let tokens = h.reshaped([2, 8, 256]).transposed(1, 2)
        return Tensor.attention(query: tokens, key: tokens, value: tokens, heads: 2).sum()
    }
    _ = step()
    let statistics = BufferPool.track { _ = step() }
    #expect(statistics.systemAllocations == 0)
    #expect(statistics.reuses > 5)
}
