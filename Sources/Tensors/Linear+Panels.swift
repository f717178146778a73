/// Dense layers over few rows, run a panel of output features at a time.
///
/// Over few rows (a text encoder's 77 tokens, time embeddings, cross-attention keys from 154 text tokens) a dense
/// layer is bound by reading its weights. Weights stored as halves would, widened whole first, be written out as
/// Float32 and read back: three times the bytes the halves take. Here each compute thread widens a panel of output
/// features into its own scratch, about 1 MB (L2 on some cores, the near L3 on others), and multiplies the rows by it
/// there. The rows are re-packed for every panel, so panels are not made narrower than the weights' size asks: a
/// 512 KB panel of a 3072-input layer was 32 outputs wide and re-packed 154 rows 24 times. For a model's layers their
/// count is even and their widths nearly equal, so two threads get the same work (five 160-wide panels of a
/// 768-output layer left one thread idle a fifth of the time). Float32 weights take the same panels
/// (read in place), so that a layer computes the same bits whichever way its weights are stored: OpenBLAS's result
/// for an element depends on how a product is split. Many rows take one product over the whole layer
/// (`withFloat32Elements`), where its arithmetic dwarfs one more pass over the weights.
extension Tensor {
    /// The most floats of one widened panel (1 MB).
    static let panelFloats = 1 << 18

    /// Rows × input features up to which `linear` runs by panels (2 MB of rows).
    static let panelRowFloats = 1 << 19

    /// Whether `linear` over `rows` rows of `inputs` features runs by panels.
    static func multipliesByPanels(rows: Int, inputs: Int) -> Bool {
        rows * inputs <= panelRowFloats
    }

    /// The panels a layer of `outputs` × `inputs` weights is multiplied by: their width (in outputs) and count. It asks
    /// for as few as keep each within `panelFloats`, at least two and an even count, then rounds the width up to a
    /// multiple of 16 outputs, which can leave fewer (odd only for widths no model has); the last may be narrower.
    /// They depend on the shape only, never on the thread count.
    public static func panelLayout(outputs: Int, inputs: Int) -> (width: Int, count: Int) {
        var count = max(2, (outputs * inputs + panelFloats - 1) / panelFloats)
        count += count % 2
        let width = min(outputs, max(16, ((outputs + count - 1) / count + 15) / 16 * 16))
        return (width, (outputs + width - 1) / width)
    }

    /// c [rows, out] = a [rows, in] · weightᵀ + beta · c, `weight` [out, in] (Float32 or halves) a panel of outputs at
    /// a time (`panelLayout`).
    static func multiplyByPanels(rows: Int, a: UnsafePointer<Float>, weight: Tensor, c: UnsafeMutablePointer<Float>, beta: Float) {
        let (outputs, inputs) = (weight.shape[0], weight.shape[1])
        let (panel, panels) = panelLayout(outputs: outputs, inputs: inputs)
        withExtendedLifetime(weight) {
            parallelParts(panels, parts: min(ComputeThreads.count, panels)) { _, range in
                func multiply(_ index: Int, by b: UnsafePointer<Float>) {
                    let first = index * panel
                    Gemm.multiply(
                        m: rows, n: min(panel, outputs - first), k: inputs, a: a, lda: inputs, b: b, ldb: inputs,
                        transposeB: true, c: c + first, ldc: outputs, beta: beta)
                }
                guard weight.isHalf else {
                    for index in range { multiply(index, by: weight.pointer + index * panel * inputs) }
                    return
                }
                ThreadScratch.with(.weights, count: panel * inputs) { scratch in
                    for index in range {
                        let first = index * panel
                        widen(weight.storage, range: first * inputs..<min(first + panel, outputs) * inputs, into: scratch)
                        multiply(index, by: scratch)
                    }
                }
            }
        }
    }
}
