import Tensors
import Testing

/// The tests that flip conv2d's global path switches (`Tensor.stackedEnabled`, `winogradEnabled`),
/// run one at a time so that each takes the path it asks for.
@Suite(.serialized) struct ConvolutionPathSwitches {
    /// Every GEMM path of conv2d against a double-precision direct convolution: one im2col GEMM for
    /// the whole batch (small outputs of wide layers) and the per-image paths it replaces (shifted GEMMs
    /// at stride 1, im2col when strided), on shapes like SD's small layers (256 input channels, 3×3 at
    /// stride 1 and 2, batch 1 and 2, with and without bias), narrow layers (which always take the
    /// per-image paths) and a 4×4 kernel with padding 2. Bound as for Winograd: 1e-6 of the sum
    /// of |w·x| over each output's window (a wrong offset or image is off by ~1).
    @Test(arguments: [true, false])
    func convolutionPathsMatchDirect(stacked: Bool) {
        let previous = Tensor.stackedEnabled
        Tensor.stackedEnabled = stacked
        defer { Tensor.stackedEnabled = previous }
        let shapes: [(batch: Int, channels: Int, outChannels: Int, side: Int, kernel: Int, stride: Int, padding: Int, bias: Bool)] = [
            (2, 256, 20, 16, 3, 1, 1, true), (1, 256, 20, 16, 3, 1, 1, false), (2, 256, 9, 17, 3, 2, 1, true),
            (1, 8, 12, 23, 3, 2, 0, false), (2, 5, 7, 18, 4, 1, 2, true),
        ]
        for (number, s) in shapes.enumerated() {
            let seed = UInt32(number * 3)
            let x = Tensor(shape: [s.batch, s.channels, s.side, s.side], values: lcgValues(s.batch * s.channels * s.side * s.side, seed: seed + 1))
            let w = Tensor(
                shape: [s.outChannels, s.channels, s.kernel, s.kernel],
                values: lcgValues(s.outChannels * s.channels * s.kernel * s.kernel, seed: seed + 2))
            let b = s.bias ? Tensor(shape: [s.outChannels], values: lcgValues(s.outChannels, seed: seed + 3)) : nil
            var y = Tensor(zeros: [1])
            let statistics = BufferPool.track { y = x.conv2d(weight: w, bias: b, stride: s.stride, padding: s.padding) }
            // The batch path's column matrix [C·kh·kw, batch·plane] is its largest buffer; only the
            // wide layers (256 channels) take it, and only when it is switched on. (A single image at
            // stride 2 takes an im2col matrix of that size on either path.)
            let side = (s.side + 2 * s.padding - s.kernel) / s.stride + 1
            let columns = s.channels * s.kernel * s.kernel * s.batch * side * side
            if s.batch > 1 || s.stride == 1 {
                #expect((statistics.largestRequest == columns) == (stacked && s.channels >= 256), "conv2d \(s): path taken")
            }
            #expect(y.shape == [s.batch, s.outChannels, side, side])
            let worst = worstRelativeError(y, x: x, w: w, b: b, stride: s.stride, padding: s.padding)
            #expect(worst <= 1e-6, "conv2d \(s) (batch im2col \(stacked)) off by \(worst) of its window's magnitude")
        }
    }

    /// The Winograd path and the shifted-GEMM path agree on a UNet-like layer (64 channels, 32×32
    /// pixels, batch 2: 128 tiles, the smallest batch that takes Winograd), and Winograd runs without
    /// allocating once its buffers are pooled.
    @Test func winogradAgreesWithShiftedGemms() {
        let (channels, side) = (64, 32)
        let x = Tensor(shape: [2, channels, side, side], values: lcgValues(2 * channels * side * side, seed: 11, scale: 0.5))
        let w = Tensor(shape: [channels, channels, 3, 3], values: lcgValues(channels * channels * 9, seed: 12, scale: 0.05))
        let winograd = x.conv2d(weight: w, padding: 1)
        (Tensor.winogradEnabled, Tensor.stackedEnabled) = (false, false)
        let shifted = x.conv2d(weight: w, padding: 1)
        (Tensor.winogradEnabled, Tensor.stackedEnabled) = (true, true)
        #expect(winograd.maxAbsDifference(shifted) <= 1e-4 * shifted.absMax())
        _ = x.conv2d(weight: w, padding: 1)
        let statistics = BufferPool.track { _ = x.conv2d(weight: w, padding: 1) }
        #expect(statistics.systemAllocations == 0)
    }

    /// Winograd with its transformed weights in blocks of output channels (as SD's 1280-channel
    /// layers run; here blocks of 16 channels, the last one partial: 37 = 16 + 16 + 5) against a
    /// double-precision direct convolution, with the bias, partial tiles at the edges and a batch of
    /// two.
    @Test func winogradInChannelBlocksMatchesDirect() {
        let (batch, channels, outChannels, height, width) = (2, 19, 37, 37, 41)
        let previous = Tensor.winogradWeightFloats
        Tensor.winogradWeightFloats = 36 * channels * 16
        defer { Tensor.winogradWeightFloats = previous }
        let x = Tensor(shape: [batch, channels, height, width], values: lcgValues(batch * channels * height * width, seed: 21))
        let w = Tensor(shape: [outChannels, channels, 3, 3], values: lcgValues(outChannels * channels * 9, seed: 22))
        let b = Tensor(shape: [outChannels], values: lcgValues(outChannels, seed: 23))
        let y = x.conv2d(weight: w, bias: b, padding: 1)
        let worst = worstRelativeError(y, x: x, w: w, b: b, stride: 1, padding: 1)
        #expect(worst <= 2e-6, "Winograd in channel blocks off by \(worst) of its window's magnitude")
    }
}
