import Tensors

/// Reproducible values in [-scale, scale) from a linear congruential generator, so convolution
/// tests need no fixture files.
func lcgValues(_ count: Int, seed: UInt32, scale: Float = 2) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return (Float(state >> 8) / Float(1 << 24) * 2 - 1) * scale
    }
}

/// The worst error of `output` against a double-precision direct convolution of `x` with `w`
/// (and bias `b`), relative to the sum of |w·x| over each output's window: the measure that
/// bounds every GEMM path's rounding, whatever the magnitudes.
func worstRelativeError(_ output: Tensor, x: Tensor, w: Tensor, b: Tensor?, stride: Int, padding: Int) -> Double {
    let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (outChannels, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
    let (outHeight, outWidth) = (output.shape[2], output.shape[3])
    let (xs, ws, ys) = (x.scalars, w.scalars, output.scalars)
    let bs = b?.scalars ?? [Float](repeating: 0, count: outChannels)
    var worst = 0.0
    for n in 0..<batch {
        for o in 0..<outChannels {
            for i in 0..<outHeight {
                for j in 0..<outWidth {
                    var sum = Double(bs[o])
                    var magnitude = abs(Double(bs[o])) + 1e-30
                    for c in 0..<channels {
                        for ky in 0..<kh {
                            let row = i * stride + ky - padding
                            guard (0..<height).contains(row) else { continue }
                            for kx in 0..<kw {
                                let column = j * stride + kx - padding
                                guard (0..<width).contains(column) else { continue }
                                let product =
                                    Double(ws[((o * channels + c) * kh + ky) * kw + kx])
                                    * Double(xs[((n * channels + c) * height + row) * width + column])
                                sum += product
                                magnitude += abs(product)
                            }
                        }
                    }
                    let got = Double(ys[((n * outChannels + o) * outHeight + i) * outWidth + j])
                    worst = max(worst, abs(got - sum) / magnitude)
                }
            }
        }
    }
    return worst
}
