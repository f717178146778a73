import Foundation
import Tensors
import Testing

/// Tiles of a few rows (so that each thread runs many tiles with its own scratch)
/// give the same result as PyTorch.
@Test func smallTilesMatchPyTorch() {
    for fixture in Fixtures.cases where fixture.kind.hasPrefix("attention") {
        let expected = Fixtures.tensor(fixture.output)
        let input = fixture.inputs.mapValues(Fixtures.tensor)
        let actual = Tensor.attention(
            query: input["q"]!, key: input["k"]!, value: input["v"]!,
            heads: fixture.parameters["heads"]!.int,
            causal: fixture.kind == "attention_causal", blockRows: 5)
        #expect(actual.maxAbsDifference(expected) <= 1e-5 + 1e-4 * expected.absMax(), "\(fixture.name)")
    }
}

/// Attention over 4096 tokens never asks for the full tokens² score matrix.
@Test func attentionMemoryDoesNotGrowWithTokensSquared() {
    let tokens = 4096
    let channels = 64
    let heads = 2
    let q = Tensor(repeating: 0.01, shape: [1, tokens, channels])
    let statistics = BufferPool.track {
        _ = Tensor.attention(query: q, key: q, value: q, heads: heads)
    }
    // The output and the packed keys and values are each the inputs' size; the scratch per
    // thread holds 16 queries' scores (16 × tokens) and their query and output rows.
    let scratch = ComputeThreads.count * 16 * (tokens + 2 * channels / heads + 1)
    #expect(statistics.largestRequest <= max(2 * tokens * channels, scratch))
    #expect(
        statistics.largestRequest < tokens * tokens * heads / 4,
        "largest buffer \(statistics.largestRequest) floats; the full scores would be \(tokens * tokens * heads)")
}

/// A sampling loop repeats the same shapes; from its second step on, every buffer comes from the pool.
@Test func repeatedStepsReuseBuffers() {
    let x = Tensor(repeating: 0.5, shape: [2, 8, 16, 16])
    let weight = Tensor(repeating: 0.01, shape: [8, 8, 3, 3])
    let gamma = Tensor(repeating: 1, shape: [8])
    let beta = Tensor(zeros: [8])
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

/// Both attention kernels against a double-precision reference, on every instruction-set path:
/// the short-key kernel (cross-attention) with sizes that leave partial blocks everywhere (37
/// queries, 77 keys or fewer than one six-key block, heads of width 40, 24 and 21, value heads
/// of 36 and 13), and the long-key kernel with 150 keys (not a whole 16-key panel), value heads
/// of 40, 47 (not whole vectors) and 96 (more than one 40-wide register block), and causal masks.
@Test(.serialized, arguments: [Int32(0), 1, 2])
func attentionMatchesReference(level: Int32) {
    let previous = Tensor.limitInstructionSet(level)
    defer { Tensor.limitInstructionSet(previous) }
    func values(_ count: Int, _ seed: UInt32) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 8) / Float(1 << 24) * 4 - 2
        }
    }
    for (width, valueWidth, heads, keys, causal) in [
        (80, 80, 2, 77, false), (48, 72, 2, 77, false), (40, 40, 1, 77, false),
        (42, 26, 2, 5, false), (80, 80, 2, 150, false), (48, 94, 2, 150, false),
        (24, 96, 1, 150, false), (80, 80, 2, 37, true), (24, 96, 1, 150, true),
    ] {
        let queries = causal ? keys : 37
        let q = Tensor(shape: [2, queries, width], values: values(2 * queries * width, 1))
        let k = Tensor(shape: [2, keys, width], values: values(2 * keys * width, 2))
        let v = Tensor(shape: [2, keys, valueWidth], values: values(2 * keys * valueWidth, 3))
        let out = Tensor.attention(query: q, key: k, value: v, heads: heads, causal: causal, blockRows: 23)
        let d = width / heads
        let dv = valueWidth / heads
        var worst: Double = 0
        for b in 0..<2 {
            for h in 0..<heads {
                for i in 0..<queries {
                    let scores = (0..<(causal ? i + 1 : keys)).map { j in
                        (0..<d).reduce(0.0) { $0 + Double(q[b, i, h * d + $1]) * Double(k[b, j, h * d + $1]) } / Double(d).squareRoot()
                    }
                    let top = scores.max()!
                    let weights = scores.map { exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for c in 0..<dv {
                        let expected = weights.indices.reduce(0.0) { $0 + weights[$1] * Double(v[b, $1, h * dv + c]) } / total
                        worst = max(worst, abs(Double(out[b, i, h * dv + c]) - expected))
                    }
                }
            }
        }
        #expect(worst < 1e-5, "width \(width)/\(valueWidth), \(heads) heads, \(keys) keys, causal \(causal), level \(level): error \(worst)")
    }
}
