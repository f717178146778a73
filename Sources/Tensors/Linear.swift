import CBLAS
import Foundation

/// The layer's one way to run a dense matrix product; everything that multiplies
/// matrices goes through here so that another backend can replace it.
///
/// OpenBLAS itself runs single-threaded: a large product is split here into one slice per
/// compute thread, each a single-threaded sgemm on its own core. OpenBLAS's own workers spin
/// (yielding) for up to ~0.1 s after every threaded call, and the engine's loops that follow a
/// product (norms, softmax, im2col) then share their cores with a spinning thread. Measured on
/// SD 1.5's 512×512 UNet step (batch 2, five calls in a row): 9.35–9.7 s with OpenBLAS's threads,
/// 7.8–8.2 s with these slices. Products called inside a parallel part stay on that thread.
public enum Gemm {
    /// C = alpha · op(A) · op(B) + beta · C on raw row-major buffers.
    /// `a` is m×k (or k×m when `transposeA`), `b` is k×n (or n×k when `transposeB`).
    public static func multiply(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
        b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, beta: Float = 0
    ) {
        if FlopCounter.isCounting { FlopCounter.add(2 * m * n * k) }
        _ = singleThreadedBLAS
        let threads = ComputeThreads.count
        let large = m * n * k >= 1 << 21
        // Split the larger of A and B so that the one each slice packs again is the smaller. A result must not
        // depend on the thread count (the same seed gives the same image on every host), and OpenBLAS's bits do
        // depend on where a call's rows and columns start and end: rows are safe at multiples of its kernels' row
        // blocks (12 on Zen's, 16 on Skylake-X's: 48 for both), but a column's value depends on the width of the
        // call it is in (Zen's kernel, any split point). So rows split by thread, at multiples of 48; columns are cut
        // into chunks fixed by the shape alone, which every host and a parallel region run alike.
        if m >= n {
            let parts = min(threads, m / 64)
            guard parts > 1, large, !ParallelRegion.isInside else {
                sgemm(
                    m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB,
                    c: c, ldc: ldc, alpha: alpha, beta: beta)
                return
            }
            parallelParts(parts, parts: parts) { part, _ in
                let start = m * part / parts / 48 * 48
                let end = part == parts - 1 ? m : m * (part + 1) / parts / 48 * 48
                guard start < end else { return }
                sgemm(
                    m: end - start, n: n, k: k, a: a + (transposeA ? start : start * lda), lda: lda, transposeA: transposeA,
                    b: b, ldb: ldb, transposeB: transposeB, c: c + start * ldc, ldc: ldc, alpha: alpha, beta: beta)
            }
            return
        }
        // An even count, so that two threads share them evenly.
        let chunks = large ? max(1, min(columnChunks, n / 64) & ~1) : 1
        func columns(_ chunk: Int) {
            let start = (n * chunk / chunks) & ~15
            let end = chunk == chunks - 1 ? n : (n * (chunk + 1) / chunks) & ~15
            sgemm(
                m: m, n: end - start, k: k, a: a, lda: lda, transposeA: transposeA,
                b: b + (transposeB ? start * ldb : start), ldb: ldb, transposeB: transposeB,
                c: c + start, ldc: ldc, alpha: alpha, beta: beta)
        }
        let parts = min(threads, chunks)
        guard parts > 1, !ParallelRegion.isInside else {
            for chunk in 0..<max(chunks, 1) { columns(chunk) }
            return
        }
        parallelParts(parts, parts: parts) { part, _ in
            for chunk in stride(from: part, to: chunks, by: parts) { columns(chunk) }
        }
    }

    /// How many column chunks a wide product is cut into (at least 64 columns each), whatever the thread count: up to
    /// eight threads share them; each chunk packs A again, which is the smaller operand when columns are split.
    static let columnChunks = 8

    /// One single-threaded OpenBLAS call.
    private static func sgemm(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
        b: UnsafePointer<Float>, ldb: Int, transposeB: Bool, c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float, beta: Float
    ) {
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Set once, before the first product: the BLAS core checked (`BLASCore`), and OpenBLAS's own threads never used.
    private static let singleThreadedBLAS: Void = {
        _ = BLASCore.status
        openblas_set_num_threads(1)
    }()
}

/// Counts the multiply-add FLOPs of matrix products and attention while a benchmark asks for
/// them (off otherwise: one untaken branch per GEMM call).
public enum FlopCounter {
    @usableFromInline nonisolated(unsafe) static var isCounting = false
    nonisolated(unsafe) private static var total = 0
    private static let lock = NSLock()

    @usableFromInline static func add(_ flops: Int) {
        lock.lock()
        total += flops
        lock.unlock()
    }

    /// Runs `body` without counting its products: for kernels that count the work of the
    /// computation they replace (Winograd counts the direct convolution, not its smaller GEMMs).
    static func paused(_ body: () -> Void) {
        let counting = isCounting
        isCounting = false
        body()
        isCounting = counting
    }

    /// Runs `body` and returns its result with the FLOPs of the products it ran. Not reentrant.
    public static func count<R>(_ body: () throws -> R) rethrows -> (result: R, flops: Int) {
        lock.lock()
        total = 0
        lock.unlock()
        isCounting = true
        defer { isCounting = false }
        let result = try body()
        lock.lock()
        defer { lock.unlock() }
        return (result, total)
    }
}

/// Matrix products and dense layers on tensors.
extension Tensor {
    /// The matrix product of two rank-2 tensors: [m, k] × [k, n] → [m, n].
    public func matmul(_ other: Tensor) -> Tensor {
        precondition(
            rank == 2 && other.rank == 2 && shape[1] == other.shape[0],
            "matmul needs [m,k]×[k,n], got \(shape)×\(other.shape)")
        let m = shape[0]
        let k = shape[1]
        let n = other.shape[1]
        var result = Tensor(uninitialized: [m, n])
        result.withUnsafeMutableBufferPointer { c in
            withUnsafeBufferPointer { a in
                other.withUnsafeBufferPointer { b in
                    Gemm.multiply(
                        m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n,
                        c: c.baseAddress!, ldc: n)
                }
            }
        }
        return result
    }

    /// A dense layer as PyTorch stores it: x [..., in] · weightᵀ [out, in] + bias [out]. The weight may be stored as
    /// halves (`Tensor+Halves.swift`); the bias must be Float32.
    public func linear(weight: Tensor, bias: Tensor? = nil) -> Tensor {
        if let device { return Tensor(device: onDevice(device).linear(weight: device.weight(weight), bias: bias.map(device.parameter))) }
        let inFeatures = shape.last ?? 0
        ShapeCheck.linear(input: shape, weight: weight.shape)
        let outFeatures = weight.shape[0]
        let rows = count / max(inFeatures, 1)
        var outShape = shape
        outShape[outShape.count - 1] = outFeatures
        // The bias rows are the product's starting value (beta 1), written in parallel; without
        // a bias the product overwrites uninitialised memory (beta 0). Either way no zeroing pass.
        var result = Tensor(uninitialized: outShape)
        let c = result.mutablePointer()
        withExtendedLifetime((self, bias)) {
            Tensor.fillRows(c, rows: rows, with: bias, width: outFeatures)
            let beta: Float = bias == nil ? 0 : 1
            if Tensor.multipliesByPanels(rows: rows, inputs: inFeatures) {
                Tensor.multiplyByPanels(rows: rows, a: pointer, weight: weight, c: c, beta: beta)
            } else {
                weight.withFloat32Elements { w in
                    Gemm.multiply(
                        m: rows, n: outFeatures, k: inFeatures, a: pointer, lda: inFeatures,
                        b: w, ldb: inFeatures, transposeB: true, c: c, ldc: outFeatures, beta: beta)
                }
            }
        }
        return result
    }
}

/// Dense layers between SD's channels-first feature maps and token rows, without transposing
/// either: the GEMM reads the other layout through its transpose flags.
extension Tensor {
    /// A dense layer over the channels of a channels-first map: [N, C, L] → [N, L, out]
    /// (`transposed(1, 2).linear(…)` without the transposed copy).
    public func linearFromChannels(weight: Tensor, bias: Tensor?) -> Tensor {
        if let device { return Tensor(device: onDevice(device).transposedLastTwo()).linear(weight: weight, bias: bias) }
        precondition(
            rank == 3 && weight.rank == 2 && weight.shape[1] == shape[1],
            "linearFromChannels needs [N, C, L] and weight [out, C], got \(shape) and \(weight.shape)")
        let (batch, channels, length, outFeatures) = (shape[0], shape[1], shape[2], weight.shape[0])
        var result = Tensor(uninitialized: [batch, length, outFeatures])
        let y = result.mutablePointer()
        withExtendedLifetime((self, bias)) {
            Tensor.fillRows(y, rows: batch * length, with: bias, width: outFeatures)
            weight.withFloat32Elements { w in
                for n in 0..<batch {
                    Gemm.multiply(
                        m: length, n: outFeatures, k: channels, a: pointer + n * channels * length, lda: length,
                        transposeA: true, b: w, ldb: channels, transposeB: true,
                        c: y + n * length * outFeatures, ldc: outFeatures, beta: bias == nil ? 0 : 1)
                }
            }
        }
        return result
    }

    /// Writes `bias` into each of `rows` rows of `width` floats, in parallel: the starting value
    /// (beta 1) of a dense layer's product. Without a bias nothing is written (the product uses beta 0).
    static func fillRows(_ target: UnsafeMutablePointer<Float>, rows: Int, with bias: Tensor?, width: Int) {
        guard let bias else { return }
        precondition(bias.count == width, "linear bias has \(bias.count) values, needs \(width)")
        let b = bias.pointer
        parallelFor(rows, minimumChunk: max(1, 16_384 / max(width, 1))) { range in
            for row in range { (target + row * width).update(from: b, count: width) }
        }
    }

    /// A dense layer from token rows back to a channels-first map, plus a residual of that shape:
    /// [N, L, C] → residual + [N, out, L] (`linear(…).transposed(1, 2) + residual` in one pass).
    public func linearToChannels(weight: Tensor, bias: Tensor?, residual: Tensor) -> Tensor {
        if let device = Tensor.device(of: self, residual) {
            let rows = onDevice(device).linear(weight: device.weight(weight), bias: bias.map(device.parameter))
            return Tensor(device: rows.transposedLastTwo().reshaped(residual.shape) + residual.onDevice(device))
        }
        precondition(
            rank == 3 && weight.rank == 2 && weight.shape[1] == shape[2],
            "linearToChannels needs [N, L, C] and weight [out, C], got \(shape) and \(weight.shape)")
        let (batch, length, channels, outFeatures) = (shape[0], shape[1], shape[2], weight.shape[0])
        precondition(
            residual.count == batch * outFeatures * length && residual.shape[0] == batch && residual.shape[1] == outFeatures,
            "linearToChannels residual \(residual.shape) is not [\(batch), \(outFeatures), \(length) positions]")
        var result = Tensor(uninitialized: residual.shape)
        let y = result.mutablePointer()
        withExtendedLifetime((self, bias, residual)) {
            let r = residual.pointer
            let b = bias?.pointer
            parallelFor(batch * outFeatures, minimumChunk: max(1, 16_384 / max(length, 1))) { range in
                for row in range {
                    let value = b?[row % outFeatures] ?? 0
                    let source = r + row * length
                    let target = y + row * length
                    for j in 0..<length { target[j] = source[j] + value }
                }
            }
            weight.withFloat32Elements { w in
                for n in 0..<batch {
                    Gemm.multiply(
                        m: outFeatures, n: length, k: channels, a: w, lda: channels,
                        b: pointer + n * length * channels, ldb: channels, transposeB: true,
                        c: y + n * outFeatures * length, ldc: length, beta: 1)
                }
            }
        }
        return result
    }
}
