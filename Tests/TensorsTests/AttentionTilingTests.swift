import Tensors
import Testing

/// Tiles of a few rows (so that each thread runs many tiles with its own scratch)
/// give the same result as PyTorch.
@Test func smallTilesMatchPyTorch() {
    let previous = Tensor.attentionTileScores
    Tensor.attentionTileScores = 700
    defer { Tensor.attentionTileScores = previous }
    for fixture in Fixtures.cases where fixture.kind.hasPrefix("attention") {
        let expected = Fixtures.tensor(fixture.output)
        #expect(evaluate(fixture).maxAbsDifference(expected) <= 1e-5 + 1e-4 * expected.absMax(), "\(fixture.name)")
    }
}

/// Attention over 4096 tokens never asks for the full tokens² score matrix.
@Test func attentionMemoryDoesNotGrowWithTokensSquared() {
    let tokens = 4096, channels = 64, heads = 2
    let q = Tensor(repeating: 0.01, shape: [1, tokens, channels])
    let statistics = BufferPool.track {
        _ = Tensor.attention(query: q, key: q, value: q, heads: heads)
    }
    #expect(statistics.largestRequest < tokens * tokens / 8,
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
