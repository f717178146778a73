import Foundation

/// Each thread's buffer for half-precision weights widened to Float32 while a product reads them. It grows to the
/// largest layer the thread has run (SD 1.5's and SDXL's widest convolution, 2560→1280 3×3, is 118 MB) and every
/// later layer reuses it, so a model costs its stored size plus one layer, never twice its size. One buffer per
/// thread, not buffers from `BufferPool`: the pool keeps one free buffer per size, and a UNet's weights come in
/// dozens of sizes. `BufferPool.drain()` returns the calling thread's buffer; a thread's buffer goes when it exits.
enum WeightScratch {
    /// One thread's buffer.
    private final class Buffer {
        var pointer: UnsafeMutablePointer<Float>?
        var capacity = 0
        var inUse = false

        func release() {
            pointer.map { UnsafeMutableRawPointer($0).deallocate() }
            (pointer, capacity) = (nil, 0)
        }

        deinit { release() }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { WeightScratch.threadExited($0) }
        return key
    }()

    private static func threadExited(_ buffer: UnsafeMutableRawPointer?) {
        buffer.map { Unmanaged<Buffer>.fromOpaque($0).release() }
    }

    private static var current: Buffer {
        if let existing = pthread_getspecific(key) { return Unmanaged<Buffer>.fromOpaque(existing).takeUnretainedValue() }
        let buffer = Buffer()
        pthread_setspecific(key, Unmanaged.passRetained(buffer).toOpaque())
        return buffer
    }

    /// Calls `body` with at least `count` floats of the calling thread's buffer (uninitialised; valid inside `body`).
    /// A call inside another's `body` on the same thread gets a buffer of its own.
    static func with<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let buffer = current
        guard !buffer.inUse else {
            let temporary = allocate(count)
            defer { UnsafeMutableRawPointer(temporary).deallocate() }
            return try body(temporary)
        }
        if buffer.capacity < count {
            buffer.release()
            (buffer.pointer, buffer.capacity) = (allocate(count), count)
        }
        buffer.inUse = true
        defer { buffer.inUse = false }
        return try body(buffer.pointer!)
    }

    /// Frees the calling thread's buffer (unless a product on this thread is using it).
    static func release() {
        guard let existing = pthread_getspecific(key) else { return }
        let buffer = Unmanaged<Buffer>.fromOpaque(existing).takeUnretainedValue()
        if !buffer.inUse { buffer.release() }
    }

    /// Floats the calling thread's buffer holds now (for tests).
    static var capacity: Int { pthread_getspecific(key).map { Unmanaged<Buffer>.fromOpaque($0).takeUnretainedValue().capacity } ?? 0 }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
    }
}

/// How products read weights that may be stored as halves.
extension Tensor {
    /// Calls `body` with the elements as Float32: this tensor's own memory, or for halves a copy widened (in parallel)
    /// into the calling thread's weight scratch, valid only inside `body`.
    func withFloat32Elements<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        guard isHalf else { return try withExtendedLifetime(self) { try body(pointer) } }
        return try WeightScratch.with(count: count) { scratch in
            withExtendedLifetime(self) { Tensor.widenAll(storage, into: scratch) }
            return try body(scratch)
        }
    }
}
