import Tensors
import Testing

/// Whether two tensors hold the same shape and bits (a Bool, so that a failure does not print both tensors).
func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
    a.shape == b.shape && a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern)
}

/// Every one of the 65 536 halves, as stored bytes (little-endian), in order.
private let allHalfBits: [UInt16] = (0...UInt16.max).map { $0 }

/// The stored bytes of a half-precision tensor, as 16-bit patterns.
private func bits(_ tensor: Tensor) -> [UInt16] {
    tensor.withUnsafeRawBytes { Array($0.bindMemory(to: UInt16.self)) }
}

/// Widening is exact on every instruction set: each half becomes the Float32 that Swift's `Float16` converts it to
/// (NaNs stay NaNs), bfloat16 becomes its bits shifted left by 16, and the AVX-512, F16C and portable paths give the
/// same bits (the portable path's odd-length tail included: 65 536 + 3 values).
@Test(arguments: [Int32(0), 1, 2])
func wideningIsExactOnEveryInstructionSet(level: Int32) {
    let previous = Tensor.limitInstructionSet(level)
    defer { Tensor.limitInstructionSet(previous) }
    let patterns = allHalfBits + [0x3C00, 0x8001, 0x7BFF]
    let half = patterns.withUnsafeBytes { Tensor(shape: [patterns.count], element: .float16, bytes: $0) }
    let brain = patterns.withUnsafeBytes { Tensor(shape: [patterns.count], element: .bfloat16, bytes: $0) }
    #expect(half.element == .float16 && half.isHalf && brain.element == .bfloat16)
    let wide = half.widened()
    let brainWide = brain.widened()
    #expect(wide.element == .float32 && wide.shape == [patterns.count])
    var mismatches = 0
    for (index, pattern) in patterns.enumerated() {
        let expected = Float(Float16(bitPattern: pattern))
        let value = wide[index]
        if expected.isNaN ? !value.isNaN : value.bitPattern != expected.bitPattern { mismatches += 1 }
        if brainWide[index].bitPattern != UInt32(pattern) << 16 && !brainWide[index].isNaN { mismatches += 1 }
    }
    #expect(mismatches == 0, "\(mismatches) halves widened wrongly at instruction-set level \(level)")
    #expect(wide[patterns.count - 3] == 1 && wide[patterns.count - 2] == -0x1p-24 && wide[patterns.count - 1] == 65504)
}

/// Narrowing rounds to nearest, ties to even, as Swift's `Float16(_:)` and PyTorch's `.half()` do: ties both ways,
/// the largest half and the overflow beyond it, subnormals, signed zeros and infinities; bfloat16 likewise.
@Test(arguments: [Int32(0), 1, 2])
func narrowingRoundsToNearestEven(level: Int32) {
    let previous = Tensor.limitInstructionSet(level)
    defer { Tensor.limitInstructionSet(previous) }
    var values: [Float] = [
        1 + 0x1p-11, 1 + 3 * 0x1p-11, 65504, 65519.99, 65520, -65520, 0x1p-25, 0x1.8p-24, 0x1p-14 - 0x1p-25,
        0, -0.0, .infinity, -.infinity, 1 / 3, -2.5e-6, 3.14159,
    ]
    var state: UInt32 = 7
    for _ in 0..<20_000 {
        state = state &* 1_664_525 &+ 1_013_904_223
        // Exponents from 2⁻³⁰ to 2¹⁷: subnormal halves, normal ones and overflow.
        values.append(Float(bitPattern: (state & 0x807F_FFFF) | ((97 + (state >> 8) % 48) << 23)))
    }
    let half = Tensor(shape: [values.count], values: values).narrowed(to: .float16)
    let brain = Tensor(shape: [values.count], values: values).narrowed(to: .bfloat16)
    let expected = values.map { Float16($0).bitPattern }
    #expect(bits(half) == expected)
    #expect(bits(brain)[0] == 0x3F80 && bits(brain)[1] == 0x3F80, "1 + 2⁻¹¹ and 1 + 3·2⁻¹¹ round to 1 in bfloat16")
    let brainExpected = values.map { value -> UInt16 in
        let raw = value.bitPattern
        return UInt16((raw + 0x7FFF + ((raw >> 16) & 1)) >> 16)
    }
    #expect(bits(brain) == brainExpected)
    let nan = Tensor(shape: [2], values: [.nan, -.nan]).narrowed(to: .float16).widened()
    #expect(nan[0].isNaN && nan[1].isNaN)
}

/// Shapes of dense layers: rows few enough for the panel path (text tokens, a time embedding) and many enough for
/// the whole-layer path, odd sizes, widths that do not fill a 16-wide panel, with and without bias.
private let denseShapes: [(rows: Int, inputs: Int, outputs: Int, bias: Bool)] = [
    (77, 96, 200, true), (2, 320, 1280, true), (154, 768, 40, false), (5, 1, 3, true), (3, 4097, 17, true),
    (600, 1000, 37, true), (4096, 64, 96, false), (1, 300, 5000, true),
]

/// A dense layer with weights stored as halves gives exactly (bit for bit) what it gives with those weights widened
/// beforehand: widening is exact and both run the same products, on either path.
@Test(arguments: [ElementType.float16, .bfloat16])
func linearOnHalfWeightsEqualsLinearOnWidenedWeights(element: ElementType) {
    for (number, s) in denseShapes.enumerated() {
        let seed = UInt32(number * 5 + 1)
        let x = Tensor(shape: [s.rows, s.inputs], values: lcgValues(s.rows * s.inputs, seed: seed, scale: 1))
        let weight = Tensor(shape: [s.outputs, s.inputs], values: lcgValues(s.outputs * s.inputs, seed: seed + 1, scale: 0.1))
            .narrowed(to: element)
        let bias = s.bias ? Tensor(shape: [s.outputs], values: lcgValues(s.outputs, seed: seed + 2)) : nil
        #expect(weight.element == element)
        let half = x.linear(weight: weight, bias: bias)
        let wide = x.linear(weight: weight.widened(), bias: bias)
        #expect(half.shape == [s.rows, s.outputs])
        #expect(sameBits(half, wide), "linear \(s) on \(element) weights differs from the widened weights by \(half.maxAbsDifference(wide))")
    }
}

/// The channels-first dense layers (a spatial transformer's projections in and out) on half weights equal the same
/// layers on widened weights.
@Test func channelDenseLayersOnHalfWeightsEqualWidened() {
    let (batch, channels, length, outputs) = (2, 40, 77, 24)
    let x = Tensor(shape: [batch, channels, length], values: lcgValues(batch * channels * length, seed: 3, scale: 1))
    let weight = Tensor(shape: [outputs, channels], values: lcgValues(outputs * channels, seed: 4, scale: 0.2)).narrowed(to: .float16)
    let bias = Tensor(shape: [outputs], values: lcgValues(outputs, seed: 5))
    let into = x.linearFromChannels(weight: weight, bias: bias)
    #expect(sameBits(into, x.linearFromChannels(weight: weight.widened(), bias: bias)))
    let back = Tensor(shape: [channels, outputs], values: lcgValues(channels * outputs, seed: 6, scale: 0.2)).narrowed(to: .float16)
    let residual = Tensor(shape: [batch, channels, length], values: lcgValues(batch * channels * length, seed: 7))
    let out = into.linearToChannels(weight: back, bias: nil, residual: residual)
    #expect(sameBits(out, into.linearToChannels(weight: back.widened(), bias: nil, residual: residual)))
}

/// An embedding lookup in a half table widens only the rows asked for, to the values of the widened table.
@Test func embeddingOfHalfTableEqualsWidenedTable() {
    let table = Tensor(shape: [50, 7], values: lcgValues(350, seed: 9)).narrowed(to: .float16)
    let ids = [0, 49, 3, 3, 17]
    #expect(sameBits(Tensor.embedding(table: table, ids: ids), Tensor.embedding(table: table.widened(), ids: ids)))
}

/// Slices and reshapes keep halves as halves (loaders split OpenCLIP's fused projections), with the right elements.
@Test func slicesAndReshapesKeepHalves() {
    let values = lcgValues(6 * 5, seed: 13)
    let half = Tensor(shape: [6, 5], values: values).narrowed(to: .bfloat16)
    let parts = half.chunked(3, axis: 0)
    #expect(parts.allSatisfy { $0.element == .bfloat16 && $0.shape == [2, 5] })
    #expect(parts[1].scalars == Array(half.scalars[10..<20]))
    let columns = half.slice(axis: 1, range: 1..<3)
    #expect(columns.scalars == (0..<6).flatMap { row in [half[row, 1], half[row, 2]] })
    let reshaped = half.reshaped([5, 6])
    #expect(reshaped.element == .bfloat16 && reshaped.scalars == half.scalars)
    #expect(half.description.contains("bfloat16"))
}

/// Products widen half weights into one buffer per thread, grown to the largest layer and reused by every later one:
/// a second call asks the buffer pool for its output only, and takes nothing from the system.
@Test func widenedWeightsReuseOneBufferPerThread() {
    let rows = 8200
    let x = Tensor(shape: [rows, 64], values: lcgValues(rows * 64, seed: 21, scale: 1))
    let weight = Tensor(shape: [96, 64], values: lcgValues(96 * 64, seed: 22, scale: 0.1)).narrowed(to: .float16)
    let conv = Tensor(shape: [2, 16, 32, 32], values: lcgValues(2 * 16 * 32 * 32, seed: 23, scale: 1))
    let kernel = Tensor(shape: [16, 16, 3, 3], values: lcgValues(16 * 16 * 9, seed: 24, scale: 0.1)).narrowed(to: .float16)
    _ = x.linear(weight: weight)
    _ = conv.conv2d(weight: kernel, padding: 1)
    let again = BufferPool.track {
        _ = x.linear(weight: weight)
        _ = conv.conv2d(weight: kernel, padding: 1)
    }
    #expect(again.systemAllocations == 0 && again.largestRequest == rows * 96, "only outputs and the kernels' own buffers")
}

extension ConvolutionPathSwitches {
    /// Convolutions with weights stored as halves give exactly what they give with those weights widened beforehand,
    /// on every path (Winograd, one im2col GEMM for the batch, shifted GEMMs, 1×1, strided im2col) and odd sizes.
    @Test(arguments: [ElementType.float16, .bfloat16])
    func convolutionOnHalfWeightsEqualsWidenedWeights(element: ElementType) {
        defer { (Tensor.winogradEnabled, Tensor.stackedEnabled) = (true, true) }
        let shapes: [(batch: Int, channels: Int, outChannels: Int, side: Int, kernel: Int, stride: Int, padding: Int)] = [
            (2, 16, 24, 32, 3, 1, 1), (2, 256, 20, 8, 3, 1, 1), (1, 8, 12, 23, 3, 1, 1), (2, 7, 9, 13, 1, 1, 0),
            (2, 12, 5, 17, 3, 2, 1), (1, 5, 7, 18, 4, 1, 2),
        ]
        for (winograd, stacked) in [(true, true), (false, true), (false, false)] {
            (Tensor.winogradEnabled, Tensor.stackedEnabled) = (winograd, stacked)
            for (number, s) in shapes.enumerated() {
                let seed = UInt32(number * 4 + 40)
                let x = Tensor(
                    shape: [s.batch, s.channels, s.side, s.side], values: lcgValues(s.batch * s.channels * s.side * s.side, seed: seed, scale: 1))
                let count = s.outChannels * s.channels * s.kernel * s.kernel
                let w = Tensor(shape: [s.outChannels, s.channels, s.kernel, s.kernel], values: lcgValues(count, seed: seed + 1, scale: 0.1))
                    .narrowed(to: element)
                let b = Tensor(shape: [s.outChannels], values: lcgValues(s.outChannels, seed: seed + 2))
                let half = x.conv2d(weight: w, bias: b, stride: s.stride, padding: s.padding)
                let wide = x.conv2d(weight: w.widened(), bias: b, stride: s.stride, padding: s.padding)
                #expect(sameBits(half, wide), "conv2d \(s) (Winograd \(winograd), stacked \(stacked)) on \(element) weights")
            }
        }
    }
}

/// Reading a half tensor as Float32 stops the process instead of misreading it: an operation other than a product
/// given half weights, or a caller's raw pointer.
@Test func readingHalvesAsFloatsIsAPreconditionFailure() async {
    await #expect(processExitsWith: .failure) {
        let half = Tensor(shape: [4], values: [1, 2, 3, 4]).narrowed(to: .float16)
        _ = half + half
    }
    await #expect(processExitsWith: .failure) {
        let half = Tensor(shape: [2, 2], values: [1, 2, 3, 4]).narrowed(to: .bfloat16)
        _ = half.pointer
    }
    await #expect(processExitsWith: .failure) {
        let x = Tensor(shape: [1, 2], values: [1, 2])
        let bias = Tensor(shape: [2], values: [1, 2]).narrowed(to: .float16)
        _ = x.linear(weight: Tensor(shape: [2, 2], values: [1, 0, 0, 1]), bias: bias)
    }
}
