import Tensors

/// Token merging for Stable Diffusion (ToMe for SD, Bolya & Hoffman 2023) as the `tomesd` package applies it and
/// the web UI calls it (`tomesd.apply_patch(model, ratio, use_rand=False)`): before a transformer block's
/// self-attention, `ratio` of the tokens are merged into their most similar neighbours by bipartite soft matching,
/// attention runs on the rest, and its output is copied back to every merged token (unmerge).
///
/// tomesd's defaults, which the web UI keeps: only the highest-resolution blocks merge (max_downsample 1), the
/// destinations are one token per 2×2 cell (sx = sy = 2), and only self-attention merges (not cross-attention or
/// the feed-forward). `use_rand=False` makes the cell's top-left token the destination at every step, so a
/// render is deterministic. Ties in similarity (exact duplicates only) go to the earlier token in raster order;
/// torch's unstable sort may break them otherwise, the one way this can differ from tomesd beyond rounding.
struct TokenMerge {
    /// Token indices of the destinations (each 2×2 cell's top-left token), then of the sources, in raster order.
    let destinations: [Int], sources: [Int]
    /// Per batch row: positions in `sources` left as they are, in tomesd's order (least similar last).
    let kept: [[Int]]
    /// Per batch row: positions in `sources` merged away, most similar first.
    let merged: [[Int]]
    /// Per batch row: for each merged source, the position in `destinations` it joins.
    let targets: [[Int]]
    /// Tokens before merging.
    let tokens: Int

    /// Whether a transformer over `tokens` tokens merges in a render whose latents have `latentTokens` cells:
    /// tomesd's `ceil(sqrt(latentTokens // tokens)) <= max_downsample` with max_downsample 1, the full-resolution blocks.
    static func applies(tokens: Int, latentTokens: Int) -> Bool { tokens > 0 && latentTokens / tokens <= 1 }

    /// Plans the merge of `metric` [B, N, C] (the block's input tokens, N = `width` × `height`): nil when `ratio`
    /// merges no token, so the block runs unchanged.
    init?(metric: Tensor, width: Int, height: Int, ratio: Double) {
        let (batch, count, channels) = (metric.shape[0], metric.shape[1], metric.shape[2])
        precondition(count == width * height, "token merging needs \(width)x\(height) tokens, got \(count)")
        var destinations: [Int] = []
        var sources: [Int] = []
        let (cellRows, cellColumns) = (height / 2 * 2, width / 2 * 2)
        for y in 0..<height {
            for x in 0..<width {
                // Rows and columns past the last whole 2×2 cell are sources, as tomesd's padded index buffer makes them.
                if y < cellRows && x < cellColumns && y % 2 == 0 && x % 2 == 0 {
                    destinations.append(y * width + x)
                } else {
                    sources.append(y * width + x)
                }
            }
        }
        let r = min(sources.count, Int(Double(count) * ratio))
        guard r > 0 else { return nil }
        (self.destinations, self.sources, tokens) = (destinations, sources, count)
        var kept: [[Int]] = []
        var merged: [[Int]] = []
        var targets: [[Int]] = []
        for row in 0..<batch {
            // Cosine similarity of every source to every destination, one product.
            let unit = Self.unitRows(metric, row: row, tokens: count, channels: channels)
            let scores = Self.rows(unit, sources).linear(weight: Self.rows(unit, destinations))
            var best = [Float](repeating: -.infinity, count: sources.count)
            var bestIndex = [Int](repeating: 0, count: sources.count)
            scores.withUnsafeBufferPointer { values in
                for source in sources.indices {
                    for destination in destinations.indices where values[source * destinations.count + destination] > best[source] {
                        best[source] = values[source * destinations.count + destination]
                        bestIndex[source] = destination
                    }
                }
            }
            let order = sources.indices.sorted { best[$0] > best[$1] || (best[$0] == best[$1] && $0 < $1) }
            merged.append(Array(order[..<r]))
            kept.append(Array(order[r...]))
            targets.append(order[..<r].map { bestIndex[$0] })
        }
        (self.kept, self.merged, self.targets) = (kept, merged, targets)
    }

    /// Tokens after merging.
    var mergedTokens: Int { tokens - merged[0].count }

    /// [B, N, C] → [B, N − r, C]: the kept sources, then every destination averaged with the sources merged into it
    /// (tomesd's `scatter_reduce(..., reduce="mean")`, the destination counted once).
    func merge(_ x: Tensor) -> Tensor {
        let (batch, channels) = (x.shape[0], x.shape[2])
        var result = Tensor(uninitialized: [batch, mergedTokens, channels])
        let output = result.mutablePointer()
        withExtendedLifetime(x) {
            let input = x.pointer
            for row in 0..<batch {
                let from = input + row * tokens * channels
                let to = output + row * mergedTokens * channels
                let base = to + kept[row].count * channels
                Self.copyRows(kept[row].count, channels: channels, from: from, to: to) { (sources[kept[row][$0]], $0) }
                Self.copyRows(destinations.count, channels: channels, from: from, to: base) { (destinations[$0], $0) }
                var counts = [Float](repeating: 1, count: destinations.count)
                for (source, target) in zip(merged[row], targets[row]) {
                    let sum = base + target * channels
                    let add = from + sources[source] * channels
                    for c in 0..<channels { sum[c] += add[c] }
                    counts[target] += 1
                }
                for (position, count) in counts.enumerated() where count > 1 {
                    let sum = base + position * channels
                    for c in 0..<channels { sum[c] /= count }
                }
            }
        }
        return result
    }

    /// [B, N − r, C] → [B, N, C]: each token back in its place, a merged one taking its destination's value.
    func unmerge(_ x: Tensor) -> Tensor {
        let (batch, channels) = (x.shape[0], x.shape[2])
        var result = Tensor(uninitialized: [batch, tokens, channels])
        let output = result.mutablePointer()
        withExtendedLifetime(x) {
            let input = x.pointer
            for row in 0..<batch {
                let from = input + row * mergedTokens * channels
                let to = output + row * tokens * channels
                let base = from + kept[row].count * channels
                Self.copyRows(destinations.count, channels: channels, from: base, to: to) { ($0, destinations[$0]) }
                Self.copyRows(kept[row].count, channels: channels, from: from, to: to) { ($0, sources[kept[row][$0]]) }
                Self.copyRows(merged[row].count, channels: channels, from: base, to: to) { (targets[row][$0], sources[merged[row][$0]]) }
            }
        }
        return result
    }

    /// Batch row `row` of `metric` [B, N, C] with every token scaled to unit length (tomesd's `metric / metric.norm`).
    private static func unitRows(_ metric: Tensor, row: Int, tokens: Int, channels: Int) -> Tensor {
        var result = Tensor(uninitialized: [tokens, channels])
        let output = result.mutablePointer()
        withExtendedLifetime(metric) {
            let input = metric.pointer + row * tokens * channels
            for token in 0..<tokens {
                var squares: Float = 0
                for c in 0..<channels { squares += input[token * channels + c] * input[token * channels + c] }
                let scale = 1 / squares.squareRoot()
                for c in 0..<channels { output[token * channels + c] = input[token * channels + c] * scale }
            }
        }
        return result
    }

    /// The rows `indices` of `x` [N, C], in that order.
    private static func rows(_ x: Tensor, _ indices: [Int]) -> Tensor {
        let channels = x.shape[1]
        var result = Tensor(uninitialized: [indices.count, channels])
        let output = result.mutablePointer()
        withExtendedLifetime(x) { copyRows(indices.count, channels: channels, from: x.pointer, to: output) { (indices[$0], $0) } }
        return result
    }

    /// For each i in 0..<count, copies row `rows(i).from` of `from` to row `rows(i).to` of `to` (rows of `channels`
    /// elements): the one gather/scatter that merging, unmerging and picking rows all are.
    private static func copyRows(
        _ count: Int, channels: Int, from: UnsafePointer<Float>, to: UnsafeMutablePointer<Float>, _ rows: (Int) -> (from: Int, to: Int)
    ) {
        for i in 0..<count {
            let (source, target) = rows(i)
            (to + target * channels).update(from: from + source * channels, count: channels)
        }
    }
}
