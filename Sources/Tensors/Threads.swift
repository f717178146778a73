import CBLAS
import Foundation

/// The one thread-count setting of the engine: OpenBLAS and the project's own
/// parallel loops both follow it (default: every core).
public enum ComputeThreads {
    nonisolated(unsafe) private static var current = ProcessInfo.processInfo.activeProcessorCount

    /// Threads used by GEMM and the engine's parallel loops.
    public static var count: Int { current }

    /// Sets the thread count for GEMM and the engine's loops (values below 1 mean 1).
    public static func set(_ threads: Int) {
        current = max(1, threads)
        openblas_set_num_threads(Int32(current))
    }

    /// Threads OpenBLAS reports it will use.
    public static var blasThreads: Int { Int(openblas_get_num_threads()) }
}
