/// Products whose left operand is a layer's weights [out, in] (a convolution's [O, C·kh·kw]), summed over blocks of
/// input features.
///
/// Where a convolution's output is small (SD's 1280-channel layers at 16×16 and 8×8) its product reads each weight
/// for few multiply-adds, so the cost of reading the weights shows. Weights stored as halves are widened a block of
/// input features at a time into the thread's scratch (4 MB, which stays in the cache for the product that reads it
/// right after), rather than widened whole, written out and read back. Float32 weights take the same blocks (read
/// in place), so that a layer computes the same bits whichever way its weights are stored; a layer narrower than one
/// block is one product, as before.
extension Tensor {
    /// The floats of one block of widened weights (4 MB).
    static let weightBlockFloats = 1 << 20

    /// c = weight · b for each (b, c) of `operands`: `weight` [rows, depth] as stored (any element type), b [depth,
    /// columns] and c [rows, columns] row-major. The blocks of `depth` depend on the shape only.
    static func multiplyByWeightBlocks(
        _ weight: Tensor, rows: Int, depth: Int, columns: Int,
        operands: [(b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>)]
    ) {
        precondition(weight.count == rows * depth, "weights of \(weight.count) elements are not [\(rows), \(depth)]")
        let block = min(depth, max(16, weightBlockFloats / max(rows, 1) / 16 * 16))
        func multiply(from first: Int, a: UnsafePointer<Float>, lda: Int) {
            let width = min(block, depth - first)
            for (b, c) in operands {
                Gemm.multiply(
                    m: rows, n: columns, k: width, a: a, lda: lda, b: b + first * columns, ldb: columns,
                    c: c, ldc: columns, beta: first == 0 ? 0 : 1)
            }
        }
        withExtendedLifetime(weight) {
            guard weight.isHalf else {
                for first in stride(from: 0, to: depth, by: block) { multiply(from: first, a: weight.pointer + first, lda: depth) }
                return
            }
            ThreadScratch.with(.weights, count: rows * block) { scratch in
                for first in stride(from: 0, to: depth, by: block) {
                    let width = min(block, depth - first)
                    parallelFor(rows, minimumChunk: max(1, 16_384 / width)) { range in
                        for row in range {
                            let start = row * depth + first
                            widen(weight.storage, range: start..<(start + width), into: scratch + row * width)
                        }
                    }
                    multiply(from: first, a: scratch, lda: width)
                }
            }
        }
    }
}
