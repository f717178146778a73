import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `body` over `0..<count` split into contiguous chunks, one per compute thread.
@inlinable
public func parallelFor(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = min(ComputeThreads.count, max(1, count / max(minimumChunk, 1)))
    parallelParts(count, parts: threads) { _, range in body(range) }
}

/// Splits `0..<count` into `parts` contiguous ranges run concurrently; `body` also
/// gets its part's index (for per-thread scratch memory). Matrix products called from
/// a part run on that part's thread alone (`ParallelRegion`).
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
        if start < end { ParallelRegion.run { body(part, start..<end) } }
    }
}

/// Marks the threads running a part of `parallelParts`, so that a GEMM called there stays
/// single-threaded instead of splitting itself over cores its siblings already use.
public enum ParallelRegion {
    @usableFromInline static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether the calling thread is inside a parallel part.
    public static var isInside: Bool { pthread_getspecific(key) != nil }

    /// Runs `body` marked as inside a parallel part.
    @usableFromInline static func run(_ body: () -> Void) {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        body()
        pthread_setspecific(key, previous)
    }
}
