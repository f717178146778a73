import CKernels

/// 2-D convolution on NCHW tensors, lowered to GEMM.
extension Tensor {
    /// Convolves an NCHW input with weights [out, in, kh, kw] (PyTorch's layout), with
    /// the same stride and zero padding on every side.
    ///
    /// 1×1 convolutions are one GEMM. Other stride-1 convolutions use "shifted GEMMs":
    /// the zero-padded image, read as a [channels, rows × padded width] matrix starting
    /// at each kernel offset, is exactly the input that offset sees, so kh·kw GEMMs
    /// accumulate the output without an im2col copy (a few wasted columns at the right
    /// edge are cropped). Strided convolutions use im2col. 3×3 convolutions with padding 1 over
    /// enough pixels use Winograd F(4×4, 3×3) (`convWinograd`): a quarter of the multiplications.
    /// Small outputs (at most 32×32) of wide layers take one im2col GEMM for the whole batch (`convStacked`).
    /// Half-precision weights are widened as the call runs (`withFloat32Elements`, or a block of input features at a
    /// time where the weights are one operand of a product: `multiplyByWeightBlocks`); the bias must be Float32.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        if let device {
            let result = onDevice(device).conv2d(weight: device.weight(weight), bias: bias.map(device.parameter), stride: stride, padding: padding)
            return Tensor(device: result)
        }
        let (outHeight, outWidth) = ShapeCheck.conv2d(input: shape, weight: weight.shape, stride: stride, padding: padding)
        let (batch, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        if let bias { precondition(bias.count == outChannels, "conv2d bias has \(bias.count) values, needs \(outChannels)") }

        var result = Tensor(uninitialized: [batch, outChannels, outHeight, outWidth])
        let output = result.mutablePointer()
        let plane = outHeight * outWidth
        withExtendedLifetime((self, bias)) {
            if kh == 3 && kw == 3 && stride == 1 && padding == 1
                && Tensor.winogradPays(tiles: batch * ((height + 3) / 4) * ((width + 3) / 4), channels: channels, outChannels: outChannels)
            {
                Tensor.convWinograd(
                    x: pointer, batch: batch, channels: channels, height: height, width: width,
                    weight: weight, bias: bias?.pointer, outChannels: outChannels, y: output)
            } else if kh * kw > 1 && Tensor.stackedPays(plane: plane, channels: channels, rows: channels * kh * kw, batch: batch) {
                Tensor.convStacked(
                    x: pointer, batch: batch, channels: channels, height: height, width: width,
                    stride: stride, padding: padding, weight: weight, bias: bias?.pointer,
                    outChannels: outChannels, kh: kh, kw: kw, outHeight: outHeight, outWidth: outWidth, y: output)
            } else {
                convolvePerImage(weight: weight, bias: bias, stride: stride, padding: padding, outHeight: outHeight, outWidth: outWidth, y: output)
            }
        }
        return result
    }

    /// `conv2d` one image at a time: 1×1 as one product, other stride-1 kernels as shifted GEMMs, strided ones
    /// through im2col; into the NCHW output `y`.
    private func convolvePerImage(
        weight: Tensor, bias: Tensor?, stride: Int, padding: Int, outHeight: Int, outWidth: Int, y output: UnsafeMutablePointer<Float>
    ) {
        let (batch, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let plane = outHeight * outWidth
        let images = (0..<batch).map { (x: pointer + $0 * channels * height * width, y: output + $0 * outChannels * plane) }
        if kh == 1 && kw == 1 && stride == 1 && padding == 0 {
            Tensor.multiplyByWeightBlocks(weight, rows: outChannels, depth: channels, columns: plane, operands: images.map { ($0.x, $0.y) })
        } else if stride == 1 && kh * kw > 1 && outWidth >= 16 {
            // The weight is [O, C·kh·kw]; shifted GEMMs need [kh·kw][O, C] slices.
            var taps = Tensor(uninitialized: [kh * kw, outChannels, channels])
            let t = taps.mutablePointer()
            let tapCount = kh * kw
            weight.withFloat32Elements { w in
                parallelFor(outChannels, minimumChunk: 16) { range in
                    for o in range {
                        for c in 0..<channels {
                            for k in 0..<tapCount {
                                t[(k * outChannels + o) * channels + c] = w[(o * channels + c) * tapCount + k]
                            }
                        }
                    }
                }
            }
            for image in images {
                Tensor.convShifted(
                    x: image.x, channels: channels, height: height, width: width, padding: padding,
                    taps: taps.pointer, outChannels: outChannels, kh: kh, kw: kw,
                    outHeight: outHeight, outWidth: outWidth, y: image.y)
            }
            withExtendedLifetime(taps) {}
        } else {
            for image in images {
                Tensor.convStacked(
                    x: image.x, batch: 1, channels: channels, height: height, width: width, stride: stride,
                    padding: padding, weight: weight, bias: nil, outChannels: outChannels, kh: kh, kw: kw,
                    outHeight: outHeight, outWidth: outWidth, y: image.y)
            }
        }
        guard let bias else { return }
        let b = bias.pointer
        for image in images {
            parallelFor(outChannels, minimumChunk: max(1, 16_384 / max(plane, 1))) { range in
                for o in range {
                    let row = image.y + o * plane
                    let value = b[o]
                    for j in 0..<plane { row[j] += value }
                }
            }
        }
    }

    /// Whether Winograd beats shifted GEMMs for this shape: its 36 GEMMs have one column per
    /// 4×4 tile, and each call transforms the weights (4× their size). At 1280 channels on 16×16
    /// (32 tiles in a batch of 2) that costs more than it saves: 164 ms against 117 (tensors-bench conv).
    static func winogradPays(tiles: Int, channels: Int, outChannels: Int) -> Bool {
        Tensor.winogradEnabled && tiles >= 128 && channels >= 16 && outChannels >= 16
    }

    /// Off only to compare against the GEMM paths (tests, benchmarks).
    nonisolated(unsafe) public static var winogradEnabled = true

    /// Whether one im2col GEMM over the whole batch beats a GEMM per image (or per tap): at small
    /// outputs those GEMMs have too few columns to run at the sgemm rate (SD's 1280-channel layers
    /// at 16×16 and 8×8, where Winograd does not pay either), and nine shifted GEMMs with 1 280-deep
    /// sums rewrite the output nine times. Measured (tensors-bench conv, batch 2): 1280 channels at
    /// 16×16 95 ms against 126, at 8×8 33 against 45. Narrow layers (under 256 channels) cost little
    /// either way and keep the per-image paths, whose buffers are a ninth of the column matrix (a
    /// tiled VAE decode's working memory stays below its output's); the column matrix stays under 64 MB.
    static func stackedPays(plane: Int, channels: Int, rows: Int, batch: Int) -> Bool {
        Tensor.stackedEnabled && plane <= 1024 && channels >= 256 && rows * plane * batch <= 16 << 20
    }

    /// Off only to compare against the per-image paths (tests, benchmarks).
    nonisolated(unsafe) public static var stackedEnabled = true

    /// Winograd F(4×4, 3×3), stride 1, padding 1, over the whole batch: per block of tiles,
    /// inputs → 36 [C, tiles] matrices; then per block of output channels, weights → 36 [O, C]
    /// matrices, 36 GEMMs, and the output transform (which adds the bias). Tile blocks keep the
    /// transformed inputs and products to a few tens of MB whatever the image size; channel
    /// blocks keep the transformed weights (4× the weights) under `winogradWeightFloats`.
    private static func convWinograd(
        x: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int,
        weight: Tensor, bias: UnsafePointer<Float>?, outChannels: Int, y: UnsafeMutablePointer<Float>
    ) {
        // The work a direct convolution would do, so that GFLOP/s figures stay comparable.
        if FlopCounter.isCounting { FlopCounter.add(2 * batch * outChannels * channels * 9 * height * width) }
        let total = batch * ((height + 3) / 4) * ((width + 3) / 4)
        let outBlock = min(outChannels, max(16, winogradWeightFloats / (36 * channels) / 16 * 16))
        let block = min((total + 7) / 8 * 8, max(64, 6_000_000 / (36 * max(channels, outBlock)) / 8 * 8))
        // The three buffers are the thread's scratch (`ThreadScratch`), reused by every Winograd layer whatever its
        // shape; pooled by size, a UNet's layers would each keep their own.
        ThreadScratch.with(.winogradWeights, count: 36 * outBlock * channels) { u in
            ThreadScratch.with(.winogradInputs, count: 36 * channels * block) { v in
                ThreadScratch.with(.winogradProducts, count: 36 * outBlock * block) { m in
                    winogradBlocks(
                        x: x, batch: batch, channels: channels, height: height, width: width, weight: weight, bias: bias,
                        outChannels: outChannels, outBlock: outBlock, block: block, u: u, v: v, m: m, y: y)
                }
            }
        }
    }

    /// `convWinograd`'s loop over blocks of tiles and of output channels, with its buffers: `u` for 36 × `outBlock`
    /// × channels transformed weights, `v` for 36 × channels × `block` transformed inputs, `m` for the products.
    private static func winogradBlocks(
        x: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int, weight: Tensor,
        bias: UnsafePointer<Float>?, outChannels: Int, outBlock: Int, block: Int,
        u: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>,
        y: UnsafeMutablePointer<Float>
    ) {
        let total = batch * ((height + 3) / 4) * ((width + 3) / 4)
        // Halves are widened a block of output channels at a time, as the block is transformed.
        func transformWeights(from o0: Int, count outs: Int) {
            weight.withFloat32Elements(in: o0 * channels * 9..<(o0 + outs) * channels * 9) { w in
                parallelFor(outs, minimumChunk: 4) { range in
                    ck_winograd_weights(w, outs, channels, range.lowerBound, range.upperBound, u)
                }
            }
        }
        // Weights that fit one block are transformed once per call; blocked ones (the widest layers,
        // whose tiles fit one block up to 32×32) again for every tile block.
        let blocked = outBlock < outChannels
        if !blocked { transformWeights(from: 0, count: outChannels) }
        for first in stride(from: 0, to: total, by: block) {
            let count = min(block, total - first)
            let columns = (count + 7) / 8 * 8
            parallelFor(channels, minimumChunk: 4) { range in
                ck_winograd_input(x, channels, height, width, first, count, columns, range.lowerBound, range.upperBound, v)
            }
            for o0 in stride(from: 0, to: outChannels, by: outBlock) {
                let outs = min(outBlock, outChannels - o0)
                if blocked { transformWeights(from: o0, count: outs) }
                FlopCounter.paused {
                    for point in 0..<36 {
                        Gemm.multiply(
                            m: outs, n: columns, k: channels,
                            a: u + point * outs * channels, lda: channels,
                            b: v + point * channels * columns, ldb: columns,
                            c: m + point * outs * columns, ldc: columns)
                    }
                }
                parallelFor(outs, minimumChunk: 4) { range in
                    ck_winograd_output(
                        m, outs, o0, outChannels, height, width, first, count, columns, bias,
                        o0 + range.lowerBound, o0 + range.upperBound, y)
                }
            }
        }
    }

    /// The most floats of transformed Winograd weights one block holds: 16 M (64 MB). Whole, the
    /// UNet's widest Winograd layers at 32×32 (1920→640, 177 MB; 1280→1280, 236 MB) outgrew the
    /// buffer pool's largest buffer and were mapped and faulted in afresh on every call.
    nonisolated(unsafe) public static var winogradWeightFloats = 16 << 20

    private static func convShifted(
        x: UnsafePointer<Float>, channels: Int, height: Int, width: Int, padding: Int,
        taps: UnsafePointer<Float>, outChannels: Int, kh: Int, kw: Int, outHeight: Int, outWidth: Int,
        y: UnsafeMutablePointer<Float>
    ) {
        let paddedWidth = width + 2 * padding
        let paddedHeight = height + 2 * padding
        let paddedPlane = paddedHeight * paddedWidth
        // kw − 1 spare zeros after the last plane keep the last offset's reads in bounds.
        var padded = Tensor(zeros: [channels * paddedPlane + kw])
        let p = padded.mutablePointer()
        parallelFor(channels, minimumChunk: 8) { range in
            for c in range {
                for row in 0..<height {
                    (p + c * paddedPlane + (row + padding) * paddedWidth + padding)
                        .update(from: x + (c * height + row) * width, count: width)
                }
            }
        }
        let columns = outHeight * paddedWidth
        var wide = Tensor(uninitialized: [outChannels, columns])
        let accumulator = wide.mutablePointer()
        for ky in 0..<kh {
            for kx in 0..<kw {
                let tap = ky * kw + kx
                Gemm.multiply(
                    m: outChannels, n: columns, k: channels,
                    a: taps + tap * outChannels * channels, lda: channels,
                    b: p + ky * paddedWidth + kx, ldb: paddedPlane,
                    c: accumulator, ldc: columns, beta: tap == 0 ? 0 : 1)
            }
        }
        parallelFor(outChannels, minimumChunk: 8) { range in
            for o in range {
                for row in 0..<outHeight {
                    (y + (o * outHeight + row) * outWidth)
                        .update(from: accumulator + o * columns + row * paddedWidth, count: outWidth)
                }
            }
        }
        withExtendedLifetime((padded, wide)) {}
    }

    /// im2col for the whole batch: a [C·kh·kw, batch·plane] column matrix, one GEMM, then each
    /// image's [O, plane] block copied out with the bias added (written in place when batch is 1).
    private static func convStacked(
        x: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int, stride: Int, padding: Int,
        weight: Tensor, bias: UnsafePointer<Float>?, outChannels: Int, kh: Int, kw: Int,
        outHeight: Int, outWidth: Int, y: UnsafeMutablePointer<Float>
    ) {
        let plane = outHeight * outWidth
        let wide = batch * plane
        let rows = channels * kh * kw
        var columns = Tensor(uninitialized: [rows, wide])
        let col = columns.mutablePointer()
        parallelFor(rows, minimumChunk: 4) { range in
            for r in range {
                let c = r / (kh * kw)
                let ky = (r / kw) % kh
                let kx = r % kw
                for n in 0..<batch {
                    let target = col + r * wide + n * plane
                    let image = x + (n * channels + c) * height * width
                    for oy in 0..<outHeight {
                        let iy = oy * stride + ky - padding
                        let line = target + oy * outWidth
                        guard iy >= 0 && iy < height else {
                            line.update(repeating: 0, count: outWidth)
                            continue
                        }
                        let source = image + iy * width
                        for ox in 0..<outWidth {
                            let ix = ox * stride + kx - padding
                            line[ox] = ix >= 0 && ix < width ? source[ix] : 0
                        }
                    }
                }
            }
        }
        var stacked = Tensor(uninitialized: batch == 1 ? [0] : [outChannels, wide])
        let product = batch == 1 ? y : stacked.mutablePointer()
        multiplyByWeightBlocks(weight, rows: outChannels, depth: rows, columns: wide, operands: [(UnsafePointer(col), product)])
        if batch > 1 || bias != nil {
            parallelFor(outChannels, minimumChunk: max(1, 16_384 / max(wide, 1))) { range in
                for o in range {
                    let value = bias?[o] ?? 0
                    for n in 0..<batch {
                        let source = product + o * wide + n * plane
                        let target = y + (n * outChannels + o) * plane
                        for j in 0..<plane { target[j] = source[j] + value }
                    }
                }
            }
        }
        withExtendedLifetime((columns, stacked)) {}
    }
}
