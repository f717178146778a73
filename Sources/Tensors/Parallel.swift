import Dispatch

/// Runs `body` over `0..<count` split into contiguous chunks, one per compute thread.
/// Never call it from inside a GEMM: OpenBLAS and these loops share the same cores.
@inlinable
public func parallelFor(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = min(ComputeThreads.count, max(1, count / max(minimumChunk, 1)))
    parallelParts(count, parts: threads) { _, range in body(range) }
}

/// Splits `0..<count` into `parts` contiguous ranges run concurrently; `body` also
/// gets its part's index (for per-thread scratch memory).
@inlinable
public func parallelParts(_ count: Int, parts: Int, _ body: (Int, Range<Int>) -> Void) {
    let parts = max(1, min(parts, count))
    if parts == 1 {
        if count > 0 { body(0, 0..<count) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: parts) { part in
        let start = count * part / parts
        let end = count * (part + 1) / parts
        if start < end { body(part, start..<end) }
    }
}
