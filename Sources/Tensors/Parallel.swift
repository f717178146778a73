import Dispatch

/// Runs `body` over `0..<count` split into contiguous chunks, one per compute thread.
/// Never call it from inside a GEMM: OpenBLAS and these loops share the same cores.
@inlinable
public func parallelFor(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = min(ComputeThreads.count, max(1, count / max(minimumChunk, 1)))
    if threads <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: threads) { part in
        let start = count * part / threads
        let end = count * (part + 1) / threads
        if start < end { body(start..<end) }
    }
}
