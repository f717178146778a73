import Tensors
import Testing

/// Every GEMM path of conv2d against a double-precision direct convolution: one im2col GEMM for
/// the whole batch (small outputs of wide layers) and the per-image paths it replaces (shifted GEMMs
/// at stride 1, im2col when strided), on shapes like SD's small layers (256 input channels, 3×3 at
/// stride 1 and 2, batch 1 and 2, with and without bias), narrow layers (which always take the
/// per-image paths) and a 4×4 kernel with padding 2. Bound as for Winograd: 1e-6 of the sum
/// of |w·x| over each output's window (a wrong offset or image is off by ~1).
@Test(.serialized, arguments: [true, false])
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
        let w = Tensor(shape: [s.outChannels, s.channels, s.kernel, s.kernel],
                       values: lcgValues(s.outChannels * s.channels * s.kernel * s.kernel, seed: seed + 2))
        let b = s.bias ? Tensor(shape: [s.outChannels], values: lcgValues(s.outChannels, seed: seed + 3)) : nil
        let y = x.conv2d(weight: w, bias: b, stride: s.stride, padding: s.padding)
        let side = (s.side + 2 * s.padding - s.kernel) / s.stride + 1
        #expect(y.shape == [s.batch, s.outChannels, side, side])
        let worst = worstRelativeError(y, x: x, w: w, b: b, stride: s.stride, padding: s.padding)
        #expect(worst <= 1e-6, "conv2d \(s) (batch im2col \(stacked)) off by \(worst) of its window's magnitude")
    }
}
