import CKernels

/// Softmax and multi-head scaled-dot-product attention.
extension Tensor {
    /// Softmax over the last dimension.
    public func softmax() -> Tensor {
        var result = self
        let width = shape[rank - 1]
        let output = result.mutablePointer()
        parallelFor(count / max(width, 1), minimumChunk: max(1, 4096 / max(width, 1))) { range in
            for row in range { Tensor.softmaxRow(output + row * width, width) }
        }
        return result
    }

    /// The vector instruction set the engine's own kernels use ("avx512", "avx2+fma" or "baseline").
    public static var instructionSet: String { String(cString: ck_instruction_set()) }

    /// Caps the vector kernels' instruction set (0 baseline, 1 AVX2+FMA, 2 AVX-512, −1 none);
    /// returns the previous cap. Lets tests check every path on one machine.
    @discardableResult
    public static func limitInstructionSet(_ level: Int32) -> Int32 {
        let previous = instructionSetCap
        instructionSetCap = level
        ck_limit_instruction_set(level)
        return previous
    }

    nonisolated(unsafe) private static var instructionSetCap: Int32 = -1

    /// Softmax of one row in place (the vectorised C kernel, chosen for this CPU).
    @inlinable @inline(__always)
    static func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ width: Int) {
        ck_softmax_row(row, width)
    }

    /// Scores per query tile: small enough that a tile stays in a core's L2 cache
    /// while it goes through softmax, large enough for efficient GEMMs.
    public static var attentionTileScores = 1 << 20

    /// Multi-head attention softmax(Q·Kᵀ/√d)·V with heads split from the channels:
    /// query [B, Nq, H·d], key [B, Nk, H·d], value [B, Nk, H·dv] → [B, Nq, H·dv].
    /// `causal` masks each query from the keys after it (CLIP's text encoder).
    ///
    /// Heads are read in place through GEMM leading dimensions (no transposes).
    /// Work is split into (batch, head, query tile) items; each compute thread takes
    /// whole items and runs them with single-threaded GEMMs, so a tile's scores go
    /// from GEMM through softmax to GEMM without leaving its core. The largest buffer
    /// is one tile's scores per thread: memory grows with tokens, not tokens².
    /// `tileScores` overrides `attentionTileScores` for this call.
    public static func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool = false,
                                 tileScores: Int? = nil) -> Tensor {
        precondition(query.rank == 3 && key.rank == 3 && value.rank == 3, "attention needs [B, N, C] tensors")
        let (batch, queries, width) = (query.shape[0], query.shape[1], query.shape[2])
        let (keys, valueWidth) = (key.shape[1], value.shape[2])
        precondition(key.shape[0] == batch && value.shape[0] == batch && value.shape[1] == keys && key.shape[2] == width,
                     "attention shapes do not agree: q \(query.shape), k \(key.shape), v \(value.shape)")
        precondition(width % heads == 0 && valueWidth % heads == 0, "channels must divide into \(heads) heads")
        precondition(!causal || keys == queries, "causal attention needs as many keys as queries")
        let headWidth = width / heads, valueHeadWidth = valueWidth / heads
        let scale = 1 / Float(headWidth).squareRoot()
        if keys <= shortKeyLimit && !causal {
            return shortAttention(query: query, key: key, value: value, heads: heads, scale: scale)
        }
        let tile = max(1, min(queries, (tileScores ?? attentionTileScores) / max(keys, 1)))
        let tiles = (queries + tile - 1) / tile
        let items = batch * heads * tiles
        let threads = max(1, min(ComputeThreads.count, items))

        var result = Tensor(uninitialized: [batch, queries, valueWidth])
        let output = result.mutablePointer()
        // Per thread: one tile of scores, then one row sum per query of the tile.
        let scratchPerThread = tile * keys + tile
        var scores = Tensor(uninitialized: [threads, scratchPerThread])
        let scratch = scores.mutablePointer()
        withExtendedLifetime((query, key, value)) {
            let q = query.pointer, k = key.pointer, v = value.pointer
            Gemm.withSingleThreadedCalls {
                parallelParts(items, parts: threads) { thread, range in
                    let s = scratch + thread * scratchPerThread
                    let sums = s + tile * keys
                    for item in range {
                        let b = item / (heads * tiles), h = (item / tiles) % heads, first = (item % tiles) * tile
                        let rows = min(tile, queries - first)
                        let qh = q + (b * queries + first) * width + h * headWidth
                        let kh = k + b * keys * width + h * headWidth
                        let vh = v + b * keys * valueWidth + h * valueHeadWidth
                        let oh = output + (b * queries + first) * valueWidth + h * valueHeadWidth
                        Gemm.multiply(m: rows, n: keys, k: headWidth, a: qh, lda: width,
                                      b: kh, ldb: width, transposeB: true, c: s, ldc: keys, alpha: scale)
                        // Unnormalised softmax: the division by each row's sum is applied to
                        // the output row (dv wide) instead of the score row (Nk wide).
                        for row in 0..<rows {
                            let line = s + row * keys
                            let visible = causal ? first + row + 1 : keys
                            sums[row] = ck_exp_row(line, visible)
                            if visible < keys { (line + visible).update(repeating: 0, count: keys - visible) }
                        }
                        Gemm.multiply(m: rows, n: valueHeadWidth, k: keys, a: s, lda: keys,
                                      b: vh, ldb: valueWidth, c: oh, ldc: valueWidth)
                        for row in 0..<rows {
                            let line = oh + row * valueWidth, inverse = 1 / sums[row]
                            for j in 0..<valueHeadWidth { line[j] *= inverse }
                        }
                    }
                }
            }
        }
        withExtendedLifetime(scores) {}
        return result
    }

    /// Key counts up to this use the register-resident kernel for short key sequences
    /// (cross-attention to the 77 text tokens), where GEMMs as thin as 77×40 run far below
    /// the machine's sgemm rate.
    public static var shortKeyLimit = 128

    static func shortAttention(query: Tensor, key: Tensor, value: Tensor, heads: Int, scale: Float) -> Tensor {
        let (batch, queries, width) = (query.shape[0], query.shape[1], query.shape[2])
        let (keys, valueWidth) = (key.shape[1], value.shape[2])
        let headWidth = width / heads, valueHeadWidth = valueWidth / heads
        // Two items per thread (at least 256 queries each): enough to balance, few enough that
        // each item's head of K and V stays in L1 across its queries.
        let rowsPerItem = max(256, queries / (2 * max(1, ComputeThreads.count)))
        let chunks = (queries + rowsPerItem - 1) / rowsPerItem
        let items = batch * heads * chunks
        let threads = max(1, min(ComputeThreads.count, items))
        let scratchSize = ck_attention_short_scratch(keys, headWidth, valueHeadWidth)
        if FlopCounter.isCounting { FlopCounter.add(2 * batch * queries * keys * (width + valueWidth)) }
        var result = Tensor(uninitialized: [batch, queries, valueWidth])
        let output = result.mutablePointer()
        var scratchTensor = Tensor(uninitialized: [threads, scratchSize])
        let scratch = scratchTensor.mutablePointer()
        withExtendedLifetime((query, key, value)) {
            let q = query.pointer, k = key.pointer, v = value.pointer
            // Single-threaded BLAS while our threads run: OpenBLAS's idle threads would otherwise spin on the same cores.
            Gemm.withSingleThreadedCalls { parallelParts(items, parts: threads) { thread, range in
                for item in range {
                    let b = item / (heads * chunks), h = (item / chunks) % heads, first = (item % chunks) * rowsPerItem
                    let rows = min(rowsPerItem, queries - first)
                    ck_attention_short(q + (b * queries + first) * width + h * headWidth, width,
                                       k + b * keys * width + h * headWidth, width,
                                       v + b * keys * valueWidth + h * valueHeadWidth, valueWidth,
                                       output + (b * queries + first) * valueWidth + h * valueHeadWidth, valueWidth,
                                       rows, keys, headWidth, valueHeadWidth, scale, scratch + thread * scratchSize)
                }
            } }
        }
        withExtendedLifetime(scratchTensor) {}
        return result
    }
}
