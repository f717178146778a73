import Testing
import Tensors

/// A deterministic pseudo-random fill, so failures reproduce.
func pseudoRandom(_ count: Int, seed: UInt32) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return Float(state >> 8) / Float(1 << 24) * 2 - 1
    }
}

@Test func sgemmMatchesNaiveProduct() {
    for (m, k, n) in [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 128, 48)] {
        let a = Tensor(shape: [m, k], values: pseudoRandom(m * k, seed: 1))
        let b = Tensor(shape: [k, n], values: pseudoRandom(k * n, seed: 2))
        let product = a.matmul(b)
        #expect(product.shape == [m, n])
        var worst: Float = 0
        for i in 0..<m {
            for j in 0..<n {
                var sum: Double = 0
                for p in 0..<k { sum += Double(a[i, p]) * Double(b[p, j]) }
                worst = max(worst, abs(product[i, j] - Float(sum)))
            }
        }
        #expect(worst < 1e-4, "m=\(m) k=\(k) n=\(n): max error \(worst)")
    }
}

@Test func linearAddsBiasAndUsesTransposedWeight() {
    // x [2, 3], weight [2 outputs, 3 inputs] as PyTorch stores it.
    let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
    let weight = Tensor(shape: [2, 3], values: [1, 0, -1, 0.5, 0.5, 0.5])
    let bias = Tensor(shape: [2], values: [10, -10])
    let y = x.linear(weight: weight, bias: bias)
    #expect(y.shape == [2, 2])
    let expected: [Float] = [8, -7, 8, -2.5]
    #expect(y.scalars == expected)
}

@Test func reshapeSharesStorageAndWritesCopy() {
    var a = Tensor(shape: [2, 3], values: [0, 1, 2, 3, 4, 5])
    let b = a.reshaped([3, -1])
    #expect(b.shape == [3, 2])
    a[0, 0] = 42
    #expect(a[0, 0] == 42)
    #expect(b[0, 0] == 0, "writing to a copy must not change the other tensor")
}
