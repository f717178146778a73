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
    var mean: [Float] = [], inverse: [Float] = []
    for (a, b) in zip(top, bottom) {
        let count = a.count + b.count, delta = b.mean - a.mean
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
