import Foundation
import Tensors
import Testing

/// Moments gathered over two halves and combined (as a tiled decode gathers them over tiles)
/// normalise exactly as the whole tensor's own statistics do.
@Test func groupMomentsOverPartsGiveTheWholeStatistics() {
    let (batch, channels, height, width, groups) = (2, 6, 5, 7, 3)
    var state: UInt32 = 7
    let values = (0..<(batch * channels * height * width)).map { _ -> Float in
        state = state &* 1_664_525 &+ 1_013_904_223
        return Float(state >> 8) / Float(1 << 24) * 3 + 1  // an offset mean, as activations have
    }
    let x = Tensor(shape: [batch, channels, height, width], values: values)
    let weight = Tensor(shape: [channels], values: (0..<channels).map { 0.5 + Float($0) * 0.1 })
    let bias = Tensor(shape: [channels], values: (0..<channels).map { Float($0) * -0.2 })
    let top = x.groupMoments(groups: groups, rows: 0..<2, columns: 0..<width)
    let bottom = x.groupMoments(groups: groups, rows: 2..<height, columns: 0..<width)
    #expect(top.count == batch * groups && top[0].count == Double(2 * width * channels / groups))
    var mean: [Float] = []
    var inverse: [Float] = []
    for (a, b) in zip(top, bottom) {
        let count = a.count + b.count
        let delta = b.mean - a.mean
        let m = a.mean + delta * b.count / count
        let m2 = a.m2 + b.m2 + delta * delta * a.count * b.count / count
        mean.append(Float(m))
        inverse.append(Float(1 / (m2 / count + 1e-6).squareRoot()))
    }
    let shared = x.groupNorm(groups: groups, weight: weight, bias: bias, mean: mean, inverseStd: inverse)
    let own = x.groupNorm(groups: groups, weight: weight, bias: bias, epsilon: 1e-6)
    #expect(shared.maxAbsDifference(own) < 1e-5)
    // A column range picks only those columns: a constant region has no spread.
    let flat = Tensor(repeating: 2, shape: [1, 3, 4, 4])
    let corner = flat.groupMoments(groups: 3, rows: 1..<3, columns: 2..<4)
    #expect(corner.allSatisfy { $0.count == 4 && $0.mean == 2 && $0.m2 == 0 })
}

/// Group norm with SiLU fused (both the own-statistics and the shared-statistics forms) gives
/// exactly what group norm followed by SiLU gives, and SiLU itself matches x·σ(x) in double
/// precision on a plane whose size is not a multiple of the vector width (the tail path).
@Test func groupNormWithSiLUIsGroupNormThenSiLU() {
    let (batch, channels, height, width, groups) = (2, 8, 5, 7, 4)
    let x = Tensor(shape: [batch, channels, height, width], values: lcgValues(batch * channels * height * width, seed: 9, scale: 6))
    let weight = Tensor(shape: [channels], values: lcgValues(channels, seed: 10))
    let bias = Tensor(shape: [channels], values: lcgValues(channels, seed: 11))
    let separate = x.groupNorm(groups: groups, weight: weight, bias: bias).silu()
    let fused = x.groupNorm(groups: groups, weight: weight, bias: bias, silu: true)
    #expect(fused.scalars == separate.scalars)
    let mean = [Float](repeating: 0.5, count: batch * groups)
    let inverse = [Float](repeating: 0.8, count: batch * groups)
    let sharedSeparate = x.groupNorm(groups: groups, weight: weight, bias: bias, mean: mean, inverseStd: inverse).silu()
    let sharedFused = x.groupNorm(groups: groups, weight: weight, bias: bias, mean: mean, inverseStd: inverse, silu: true)
    #expect(sharedFused.scalars == sharedSeparate.scalars)
    let worst =
        zip(x.scalars, x.silu().scalars).map { input, output in
            let exact = Double(input) / (1 + exp(-Double(input)))
            return abs(Double(output) - exact) / max(abs(exact), 1e-3)
        }.max() ?? 1
    #expect(worst < 1e-6, "silu off by \(worst)")
}
