import CKernels

/// Softmax and multi-head scaled-dot-product attention.
extension Tensor {
    /// Softmax over the last dimension.
    public func softmax() -> Tensor {
        if let device { return Tensor(device: onDevice(device).softmax()) }
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

    /// Queries per work item of the long-key kernel: enough items for both cores to finish
    /// together, few enough that a thread runs several blocks of 16 queries on one head's K and V.
    public static var attentionBlockRows = 256

    /// Multi-head attention softmax(Q·Kᵀ/√d)·V with heads split from the channels:
    /// query [B, Nq, H·d], key [B, Nk, H·d], value [B, Nk, H·dv] → [B, Nq, H·dv].
    /// `causal` masks each query from the keys after it (CLIP's text encoder).
    ///
    /// Each head's K and V are packed once (`ck_flash_pack`); then (batch, head, block of
    /// queries) items are split over the compute threads, and the C kernel (`ck_flash_rows`)
    /// takes 16 queries at a time from scores through softmax to output inside the core's
    /// cache. The largest buffers are the packed K and V (the size of the inputs) and one
    /// 16-query score buffer per thread: memory grows with tokens, not tokens².
    /// `blockRows` overrides `attentionBlockRows` for this call.
    public static func attention(
        query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool = false,
        blockRows: Int? = nil
    ) -> Tensor {
        ShapeCheck.attention(query: query.shape, key: key.shape, value: value.shape)
        let (batch, queries, width) = (query.shape[0], query.shape[1], query.shape[2])
        let (keys, valueWidth) = (key.shape[1], value.shape[2])
        // The device kernels keep a head's query and sums in registers: heads up to 512 channels wide (the VAE's one
        // head); wider ones run on the host.
        if let device = Tensor.device(of: query, key, value), width / heads <= 512, valueWidth / heads <= 512 {
            let result = DeviceTensor.attention(
                query: query.onDevice(device), key: key.onDevice(device), value: value.onDevice(device), heads: heads, causal: causal)
            return Tensor(device: result)
        }
        precondition(width % heads == 0 && valueWidth % heads == 0, "channels must divide into \(heads) heads")
        precondition(!causal || keys == queries, "causal attention needs as many keys as queries")
        let headWidth = width / heads
        let valueHeadWidth = valueWidth / heads
        let scale = 1 / Float(headWidth).squareRoot()
        if FlopCounter.isCounting { FlopCounter.add(2 * batch * queries * keys * (width + valueWidth)) }
        if keys <= shortKeyLimit && !causal {
            return shortAttention(query: query, key: key, value: value, heads: heads, scale: scale)
        }
        let block = max(1, min(queries, blockRows ?? attentionBlockRows))
        let blocks = (queries + block - 1) / block
        let pairs = batch * heads
        let items = pairs * blocks
        let threads = max(1, min(ComputeThreads.count, items))
        let paddedKeys = (keys + 15) / 16 * 16
        let paddedValueWidth = (valueHeadWidth + 7) / 8 * 8
        let packedKey = paddedKeys * headWidth
        let packedValue = paddedKeys * paddedValueWidth

        var result = Tensor(uninitialized: [batch, queries, valueWidth])
        let output = result.mutablePointer()
        var packed = Tensor(uninitialized: [pairs, packedKey + packedValue])
        let kv = packed.mutablePointer()
        let scratchPerThread = ck_flash_scratch(keys, headWidth, valueHeadWidth)
        var scratchTensor = Tensor(uninitialized: [threads, scratchPerThread])
        let scratch = scratchTensor.mutablePointer()
        withExtendedLifetime((query, key, value)) {
            let q = query.pointer
            let k = key.pointer
            let v = value.pointer
            parallelFor(pairs) { range in
                for pair in range {
                    let b = pair / heads
                    let h = pair % heads
                    let target = kv + pair * (packedKey + packedValue)
                    ck_flash_pack(
                        k + b * keys * width + h * headWidth, width,
                        v + b * keys * valueWidth + h * valueHeadWidth, valueWidth,
                        keys, headWidth, valueHeadWidth, target, target + packedKey)
                }
            }
            // Items in (batch, head, block) order: a thread's consecutive items share a head.
            parallelParts(items, parts: threads) { thread, range in
                for item in range {
                    let pair = item / blocks
                    let first = (item % blocks) * block
                    let b = pair / heads
                    let h = pair % heads
                    let source = kv + pair * (packedKey + packedValue)
                    ck_flash_rows(
                        q + (b * queries + first) * width + h * headWidth, width, source, source + packedKey,
                        output + (b * queries + first) * valueWidth + h * valueHeadWidth, valueWidth,
                        min(block, queries - first), first, causal ? 1 : 0, keys, headWidth, valueHeadWidth,
                        scale, scratch + thread * scratchPerThread)
                }
            }
        }
        withExtendedLifetime((packed, scratchTensor)) {}
        return result
    }

    /// Key counts up to this use the register-resident kernel for short key sequences
    /// (cross-attention to the 77 text tokens), where GEMMs as thin as 77×40 run far below
    /// the machine's sgemm rate.
    public static let shortKeyLimit = 128

    static func shortAttention(query: Tensor, key: Tensor, value: Tensor, heads: Int, scale: Float) -> Tensor {
        let (batch, queries, width) = (query.shape[0], query.shape[1], query.shape[2])
        let (keys, valueWidth) = (key.shape[1], value.shape[2])
        let headWidth = width / heads
        let valueHeadWidth = valueWidth / heads
        // Two items per thread (at least 256 queries each): enough to balance, few enough that
        // each item's head of K and V stays in L1 across its queries.
        let rowsPerItem = max(256, queries / (2 * max(1, ComputeThreads.count)))
        let chunks = (queries + rowsPerItem - 1) / rowsPerItem
        let items = batch * heads * chunks
        let threads = max(1, min(ComputeThreads.count, items))
        let scratchSize = ck_attention_short_scratch(keys, headWidth, valueHeadWidth)
        var result = Tensor(uninitialized: [batch, queries, valueWidth])
        let output = result.mutablePointer()
        var scratchTensor = Tensor(uninitialized: [threads, scratchSize])
        let scratch = scratchTensor.mutablePointer()
        withExtendedLifetime((query, key, value)) {
            let q = query.pointer
            let k = key.pointer
            let v = value.pointer
            parallelParts(items, parts: threads) { thread, range in
                for item in range {
                    let b = item / (heads * chunks)
                    let h = (item / chunks) % heads
                    let first = (item % chunks) * rowsPerItem
                    let rows = min(rowsPerItem, queries - first)
                    ck_attention_short(
                        q + (b * queries + first) * width + h * headWidth, width,
                        k + b * keys * width + h * headWidth, width,
                        v + b * keys * valueWidth + h * valueHeadWidth, valueWidth,
                        output + (b * queries + first) * valueWidth + h * valueHeadWidth, valueWidth,
                        rows, keys, headWidth, valueHeadWidth, scale, scratch + thread * scratchSize)
                }
            }
        }
        withExtendedLifetime(scratchTensor) {}
        return result
    }
}
