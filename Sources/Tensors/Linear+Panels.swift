/// Dense layers over few rows, run a panel of output features at a time.
///
/// Over few rows (a text encoder's 77 tokens, time embeddings, cross-attention keys from 154 text tokens) a dense
/// layer is bound by reading its weights. Weights stored as halves would, widened whole first, be written out as
/// Float32 and read back: three times the bytes the halves take. Here each compute thread widens a panel of output
/// features into its own scratch, small enough to stay in its L2 cache, and multiplies the rows by it there; the rows
/// are re-packed for every panel, which costs little because they are few. Float32 weights take the same panels
/// (read in place), so that a layer computes the same bits whichever way its weights are stored: OpenBLAS's result
/// for an element depends on how a product is split. Many rows take one product over the whole layer
/// (`withFloat32Elements`), where its arithmetic dwarfs one more pass over the weights.
extension Tensor {
    /// The floats of one widened panel (512 KB): with the rows it multiplies, within a core's 1–2 MB L2.
    static let panelFloats = 1 << 17

    /// Rows × input features up to which `linear` runs by panels (2 MB of rows).
    static let panelRowFloats = 1 << 19

    /// Whether `linear` over `rows` rows of `inputs` features runs by panels.
    static func multipliesByPanels(rows: Int, inputs: Int) -> Bool {
        rows * inputs <= panelRowFloats
    }

    /// c [rows, out] = a [rows, in] · weightᵀ + beta · c, `weight` [out, in] (Float32 or halves) a panel of outputs at
    /// a time; the panels depend on the shape only.
    static func multiplyByPanels(rows: Int, a: UnsafePointer<Float>, weight: Tensor, c: UnsafeMutablePointer<Float>, beta: Float) {
        let (outputs, inputs) = (weight.shape[0], weight.shape[1])
        let panel = min(outputs, max(16, panelFloats / max(inputs, 1) / 16 * 16))
        let panels = (outputs + panel - 1) / panel
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
