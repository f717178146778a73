import Foundation

/// The one thread-count setting of the engine: its parallel loops and its split matrix
/// products both follow it (default: every core); OpenBLAS itself runs single-threaded.
public enum ComputeThreads {
    nonisolated(unsafe) private static var current = ProcessInfo.processInfo.activeProcessorCount

    /// Threads used by GEMM and the engine's parallel loops.
    public static var count: Int { current }

    /// Sets the thread count for GEMM and the engine's loops (values below 1 mean 1).
    public static func set(_ threads: Int) {
        current = max(1, threads)
    }
}
