import CKernels
import Foundation

/// Each thread's scratch buffers for what a kernel needs only while it runs: half-precision weights widened to
/// Float32, and Winograd's transformed weights, inputs and products. A slot grows to the largest request the thread
/// has made of it and every later call reuses it, whatever its size. The buffer pool would keep one free buffer per
/// exact size instead, and these come in as many sizes as a UNet has layer shapes: after an SDXL step at 1024×1024
/// the pool held 1.7 GB. A slot holds at most one layer's widened weights (52 MB for SD 1.5's and SDXL's widest
/// dense layer) or one Winograd block (64 MB, 24 MB, 24 MB). `BufferPool.drain()` frees the calling thread's slots;
/// a thread's slots go when it exits.
enum ThreadScratch {
    /// What a buffer is for: kernels that run together use different slots.
    enum Slot: Int, CaseIterable {
        /// Weights widened from halves (a layer, a block of input features or a panel of outputs).
        case weights
        /// Winograd's transformed weights, 36 matrices [out, in] for a block of output channels.
        case winogradWeights
        /// Winograd's transformed inputs for a block of tiles.
        case winogradInputs
        /// Winograd's 36 products for a block of tiles and output channels.
        case winogradProducts
    }

    /// One thread's buffers.
    private final class Buffers {
        var pointers = [UnsafeMutablePointer<Float>?](repeating: nil, count: Slot.allCases.count)
        var capacities = [Int](repeating: 0, count: Slot.allCases.count)
        var inUse = [Bool](repeating: false, count: Slot.allCases.count)

        func release(_ slot: Int) {
            pointers[slot].map { ck_free_buffer($0) }
            (pointers[slot], capacities[slot]) = (nil, 0)
        }

        deinit { for slot in pointers.indices { release(slot) } }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { ThreadScratch.threadExited($0) }
        return key
    }()

    private static func threadExited(_ buffers: UnsafeMutableRawPointer?) {
        buffers.map { Unmanaged<Buffers>.fromOpaque($0).release() }
    }

    private static var current: Buffers {
        if let existing = pthread_getspecific(key) { return Unmanaged<Buffers>.fromOpaque(existing).takeUnretainedValue() }
        let buffers = Buffers()
        pthread_setspecific(key, Unmanaged.passRetained(buffers).toOpaque())
        return buffers
    }

    /// Calls `body` with at least `count` floats of the calling thread's `slot` (uninitialised; valid inside `body`).
    /// A call inside another's `body` on the same thread and slot gets a buffer of its own.
    static func with<R>(_ slot: Slot, count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let buffers = current
        let index = slot.rawValue
        guard !buffers.inUse[index] else {
            let temporary = allocate(count)
            defer { ck_free_buffer(temporary) }
            return try body(temporary)
        }
        if buffers.capacities[index] < count {
            buffers.release(index)
            (buffers.pointers[index], buffers.capacities[index]) = (allocate(count), count)
        }
        buffers.inUse[index] = true
        defer { buffers.inUse[index] = false }
        return try body(buffers.pointers[index]!)
    }

    /// Frees the calling thread's buffers (those no kernel on this thread is using).
    static func release() {
        guard let existing = pthread_getspecific(key) else { return }
        let buffers = Unmanaged<Buffers>.fromOpaque(existing).takeUnretainedValue()
        for slot in buffers.pointers.indices where !buffers.inUse[slot] { buffers.release(slot) }
    }

    /// On huge pages from 4 MiB, as the pool's buffers (`ck_alloc_buffer`): Winograd's blocks are streamed every call.
    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        guard let buffer = ck_alloc_buffer(max(count, 1) * MemoryLayout<Float>.stride) else {
            fatalError("out of memory for \(count) floats of scratch")
        }
        return buffer.bindMemory(to: Float.self, capacity: max(count, 1))
    }
}

/// How products read weights that may be stored as halves.
extension Tensor {
    /// Calls `body` with the elements as Float32: this tensor's own memory, or for halves a copy widened (in parallel)
    /// into the calling thread's scratch (`ThreadScratch`), valid only inside `body`.
    func withFloat32Elements<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withFloat32Elements(in: 0..<count, body)
    }

    /// Calls `body` with elements `range` (row-major) as Float32, as `withFloat32Elements(_:)` does for all of them.
    func withFloat32Elements<R>(in range: Range<Int>, _ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "elements \(range) out of \(count)")
        guard isHalf else { return try withExtendedLifetime(self) { try body(pointer + range.lowerBound) } }
        return try ThreadScratch.with(.weights, count: range.count) { scratch in
            withExtendedLifetime(self) {
                parallelFor(range.count, minimumChunk: 1 << 16) { part in
                    Tensor.widen(
                        storage, range: (range.lowerBound + part.lowerBound)..<(range.lowerBound + part.upperBound), into: scratch + part.lowerBound)
                }
            }
            return try body(scratch)
        }
    }
}
