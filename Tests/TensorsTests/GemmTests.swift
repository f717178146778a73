import Tensors
import Testing

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

/// Products large enough to be split over the compute threads (by rows when A is the larger
/// operand, by columns otherwise), with every transpose, leading dimensions wider than the
/// matrices, alpha and beta, and sizes that are not multiples of the 48-row slice alignment:
/// each element against a double-precision sum, and the split result equal to the one computed
/// inside a parallel part, on one thread (rows unsplit; columns in the same shape-fixed chunks, as
/// OpenBLAS's Zen kernel gives a column different bits in calls of different widths).
@Test func splitProductsMatchReference() {
    let shapes = [(333, 90, 77), (90, 333, 77)].flatMap { shape in
        [(false, false), (true, false), (false, true), (true, true)].map { (shape.0, shape.1, shape.2, $0.0, $0.1) }
    }
    for (m, n, k, transposeA, transposeB) in shapes + [(1000, 70, 40, false, true)] {
        let (lda, ldb, ldc) = ((transposeA ? m : k) + 3, (transposeB ? k : n) + 5, n + 2)
        let a = pseudoRandom((transposeA ? k : m) * lda, seed: 3)
        let b = pseudoRandom((transposeB ? n : k) * ldb, seed: 4)
        let initial = pseudoRandom(m * ldc, seed: 5)
        func run() -> [Float] {
            var c = initial
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    c.withUnsafeMutableBufferPointer { c in
                        Gemm.multiply(
                            m: m, n: n, k: k, a: a.baseAddress!, lda: lda, transposeA: transposeA,
                            b: b.baseAddress!, ldb: ldb, transposeB: transposeB,
                            c: c.baseAddress!, ldc: ldc, alpha: 0.5, beta: 2)
                    }
                }
            }
            return c
        }
        let split = run()
        var whole: [Float] = []
        parallelParts(2, parts: 2) { part, _ in if part == 0 { whole = run() } }
        #expect(split == whole || ComputeThreads.count == 1, "\(m)×\(n)×\(k): the split product differs from the whole")
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(x) * Double(y)
                }
                worst = max(worst, abs(Double(split[i * ldc + j]) - (0.5 * sum + 2 * Double(initial[i * ldc + j]))))
            }
            for j in n..<ldc { #expect(split[i * ldc + j] == initial[i * ldc + j], "padding column \(j) written") }
        }
        #expect(worst < 1e-4, "\(m)×\(n)×\(k) tA \(transposeA) tB \(transposeB): error \(worst)")
    }
}

/// The channels-first dense layers equal the transpose-then-linear forms they replace (within
/// rounding of the reordered sums), with and without bias, on a batch of two.
@Test func channelsFirstLinearsMatchTransposedForms() {
    let (batch, channels, length, outputs) = (2, 24, 35, 17)
    let x = Tensor(shape: [batch, channels, length], values: pseudoRandom(batch * channels * length, seed: 6))
    let w = Tensor(shape: [outputs, channels], values: pseudoRandom(outputs * channels, seed: 7))
    let bias = Tensor(shape: [outputs], values: pseudoRandom(outputs, seed: 8))
    for b in [bias, nil] {
        let expected = x.transposed(1, 2).linear(weight: w, bias: b)
        let actual = x.linearFromChannels(weight: w, bias: b)
        #expect(actual.shape == [batch, length, outputs])
        #expect(actual.maxAbsDifference(expected) < 1e-5, "linearFromChannels, bias \(b != nil)")
    }
    let tokens = Tensor(shape: [batch, length, channels], values: pseudoRandom(batch * length * channels, seed: 9))
    let residual = Tensor(shape: [batch, outputs, 5, 7], values: pseudoRandom(batch * outputs * length, seed: 10))
    for b in [bias, nil] {
        var expected = tokens.linear(weight: w, bias: b).transposed(1, 2).reshaped(residual.shape)
        expected.add(residual)
        let actual = tokens.linearToChannels(weight: w, bias: b, residual: residual)
        #expect(actual.shape == residual.shape)
        #expect(actual.maxAbsDifference(expected) < 1e-5, "linearToChannels, bias \(b != nil)")
    }
}

/// Dense layers over few rows run by panels of outputs: widths a multiple of 16, none empty, each within the panel
/// budget, for any shape; for the layers SD 1.x and CLIP ViT-L have (widths of 320, 640, 768, 1280, 3072), an even
/// count whose halves (what two threads take) hold nearly the same outputs. CLIP's layers take the panels the
/// layout's doc promises, not the 32-wide ones a fixed 512 KB panel gave a 3072-input layer.
@Test func panelLayoutsAreEvenAndBalanced() {
    let modelShapes = [(768, 768), (3072, 768), (768, 3072), (320, 768), (640, 768), (1280, 768), (1280, 320), (1280, 1280)]
    // Odd sizes too, and one (200 × 6554) where rounding widths up to 16 leaves an odd count.
    for (outputs, inputs) in modelShapes + [(17, 4097), (5000, 300), (40, 768), (200, 6554), (5, 1)] {
        let (width, count) = Tensor.panelLayout(outputs: outputs, inputs: inputs)
        let what = "\(outputs)×\(inputs): \(count) panels of \(width)"
        #expect(width % 16 == 0 || width == outputs, "\(what)")
        #expect((count - 1) * width < outputs && count * width >= outputs, "\(what): an empty or a missing panel")
        #expect(width * inputs <= (1 << 18) + 16 * inputs, "\(what): over the 1 MB budget")
        guard modelShapes.contains(where: { $0 == (outputs, inputs) }) else { continue }
        #expect(count % 2 == 0, "\(what)")
        let firstHalf = count / 2 * width
        #expect(Double(outputs - firstHalf) >= 0.85 * Double(firstHalf), "\(what): unbalanced")
    }
    #expect(Tensor.panelLayout(outputs: 768, inputs: 768) == (192, 4))
    #expect(Tensor.panelLayout(outputs: 3072, inputs: 768) == (320, 10))
    #expect(Tensor.panelLayout(outputs: 768, inputs: 3072) == (80, 10))
}
