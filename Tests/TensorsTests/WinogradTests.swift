import Tensors
import Testing

/// Winograd F(4×4, 3×3) against a double-precision direct convolution, on every instruction-set
/// path, with sizes that leave partial tiles at the right and bottom edges (37×41 pixels), a
/// batch of two, channel counts that are not multiples of eight, and enough tiles that conv2d
/// takes the Winograd path. Bound: 2e-6 of the sum of |w·x| over each output's 3×3×C window
/// (the error F(4,3)'s transforms add is of that order; a wrong tap or tile is off by ~1).
@Test(.serialized, arguments: [Int32(0), 1, 2])
func winogradConvolutionMatchesDirect(level: Int32) {
    let previous = Tensor.limitInstructionSet(level)
    defer { Tensor.limitInstructionSet(previous) }
    let (batch, channels, outChannels, height, width) = (2, 19, 21, 37, 41)
    let x = Tensor(shape: [batch, channels, height, width], values: lcgValues(batch * channels * height * width, seed: 5))
    let w = Tensor(shape: [outChannels, channels, 3, 3], values: lcgValues(outChannels * channels * 9, seed: 6))
    let b = Tensor(shape: [outChannels], values: lcgValues(outChannels, seed: 7))
    let winograd = x.conv2d(weight: w, bias: b, padding: 1)
    #expect(winograd.shape == [batch, outChannels, height, width])
    let worst = worstRelativeError(winograd, x: x, w: w, b: b, stride: 1, padding: 1)
    #expect(worst <= 2e-6, "Winograd output off by \(worst) of its window's magnitude at level \(level)")
}
