import CKernels
import Foundation

/// Recycles tensor buffers by size, so that a sampling loop, which asks for the
/// same shapes every step, stops allocating after its first step.
public enum BufferPool {
    /// Counters of what the pool has done since the last `resetStatistics()`.
    public struct Statistics: Equatable, Sendable {
        /// Buffers obtained from the system allocator.
        public var systemAllocations = 0
        /// Buffers handed out again from the pool.
        public var reuses = 0
        /// The largest single buffer requested, in elements.
        public var largestRequest = 0
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    nonisolated(unsafe) private static var pooledBytes = 0
    nonisolated(unsafe) private static var stats = Statistics()
    nonisolated(unsafe) private static var capacity = 2 << 30

    /// The largest buffer the pool keeps (40 MiB): larger ones go back to the system when freed.
    /// They are full-resolution VAE activations (134–268 MB at 512×512) in many sizes, each seldom
    /// asked for again, and at 1024×1024 SDXL's wide skip concatenations and feed-forward products (84–168 MB),
    /// which pooled added 400 MB to a step's peak; the system allocator maps and unmaps them directly. A step's
    /// most frequent buffers stay pooled: SD 1.5's at 512×512 (at most 10 MB but the 84 MB feed-forward) and
    /// SDXL's 320-channel maps at 1024×1024 (40 MiB with classifier-free guidance).
    public static let largestPooledBytes = 40 << 20

    /// Bytes the pool may keep for reuse (default 2 GiB); buffers beyond it go back to the system.
    public static var capacityBytes: Int {
        get { lock.withLock { capacity } }
        set {
            lock.withLock { capacity = max(0, newValue) }
            trim()
        }
    }

    /// What the pool has done since the last reset.
    public static var statistics: Statistics { lock.withLock { stats } }

    /// Bytes of free buffers the pool keeps now (resident, but holding no tensor): part of a process's memory that
    /// its tensors do not show.
    public static var pooledBytesNow: Int { lock.withLock { pooledBytes } }

    /// Zeroes the counters.
    public static func resetStatistics() {
        lock.withLock { stats = Statistics() }
    }

    /// Returns every pooled buffer of at least `bytes` to the system (all of them by default), e.g.
    /// a sampler's large buffers before a VAE decode, which asks for other sizes, and the calling thread's
    /// scratch buffers (`ThreadScratch`), then the allocator's free pages (`returnFreePages`). Small buffers stay for
    /// loops that other threads may be running.
    public static func drain(atLeast bytes: Int = 0) {
        ThreadScratch.release()
        let buffers = lock.withLock { () -> [UnsafeMutablePointer<Float>] in
            var released: [UnsafeMutablePointer<Float>] = []
            for (elements, pointers) in free where elements * MemoryLayout<Float>.stride >= bytes {
                released += pointers
                free[elements] = nil
                pooledBytes -= elements * MemoryLayout<Float>.stride * pointers.count
            }
            return released
        }
        for buffer in buffers { ck_free_buffer(buffer) }
        returnFreePages()
    }

    /// Hands the system allocator's free pages back to the system: glibc keeps freed blocks under 32 MiB in its
    /// heaps, and after a VAE decode's bands these held 200–300 MB that the next phase's peak stacked on.
    public static func returnFreePages() {
        _ = ck_return_free_pages()
    }

    /// Runs `body` and returns what the pool did for the buffers requested on this
    /// thread meanwhile (other threads' requests are not counted), e.g. to check that
    /// a loop's second iteration allocates nothing.
    public static func track(_ body: () throws -> Void) rethrows -> Statistics {
        let previous = pthread_getspecific(trackingKey)
        let counters = UnsafeMutablePointer<Statistics>.allocate(capacity: 1)
        counters.initialize(to: Statistics())
        pthread_setspecific(trackingKey, counters)
        defer {
            pthread_setspecific(trackingKey, previous)
            counters.deallocate()
        }
        try body()
        return counters.pointee
    }

    /// Runs `body` with the buffers freed on this thread kept out of the pool, for work whose sizes nothing after it
    /// asks for (a VAE decode: at 512×512, pooling its buffers added 1–2.6 GB to the peak): the most recent
    /// `recycledBytes` of them serve the scope's own requests of their size (`RecycleBin`), and all go back to the
    /// system when it ends. Other threads keep pooling.
    public static func unpooled<T>(_ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(unpooledKey)
        let bin = RecycleBin(limit: recycledBytes)
        pthread_setspecific(unpooledKey, Unmanaged.passUnretained(bin).toOpaque())
        defer {
            pthread_setspecific(unpooledKey, previous)
            bin.empty()
        }
        return try withExtendedLifetime(bin) { try body() }
    }

    /// The most bytes of freed buffers an `unpooled` scope keeps for its own reuse: two of a 512×512 decode's
    /// full-resolution activations (134 MB each), enough that a resnet block's four there reuse each other's.
    public static let recycledBytes = 280 << 20

    /// The recycle bin of the `unpooled` scope this thread is in, if any.
    private static var currentBin: RecycleBin? {
        pthread_getspecific(unpooledKey).map { Unmanaged<RecycleBin>.fromOpaque($0).takeUnretainedValue() }
    }

    private static let unpooledKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    private static let trackingKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static func take(count: Int) -> UnsafeMutablePointer<Float> {
        let elements = max(count, 1)
        let tracked = pthread_getspecific(trackingKey)?.assumingMemoryBound(to: Statistics.self)
        // From the pool, else from this thread's `unpooled` scope, else from the system. A pool hit is counted under
        // the lock that found it; only a miss takes the lock again, to count where its buffer came from.
        let pooled: UnsafeMutablePointer<Float>? = lock.withLock {
            stats.largestRequest = max(stats.largestRequest, count)
            tracked?.pointee.largestRequest = max(tracked?.pointee.largestRequest ?? 0, count)
            guard let pointer = free[elements]?.popLast() else { return nil }
            pooledBytes -= elements * MemoryLayout<Float>.stride
            stats.reuses += 1
            tracked?.pointee.reuses += 1
            return pointer
        }
        if let pooled { return pooled }
        let reused = currentBin?.take(elements)
        lock.withLock {
            if reused == nil {
                stats.systemAllocations += 1
                tracked?.pointee.systemAllocations += 1
            } else {
                stats.reuses += 1
                tracked?.pointee.reuses += 1
            }
        }
        if let reused { return reused }
        // Large buffers on huge pages where the system offers them (`ck_alloc_buffer`).
        guard let fresh = ck_alloc_buffer(elements * MemoryLayout<Float>.stride) else {
            fatalError("out of memory for a tensor of \(elements) floats")
        }
        return fresh.bindMemory(to: Float.self, capacity: elements)
    }

    static func give(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        let elements = max(count, 1)
        let bytes = elements * MemoryLayout<Float>.stride
        if let bin = currentBin {
            bin.keep(pointer, elements: elements)
            return
        }
        let kept: Bool = lock.withLock {
            guard bytes <= largestPooledBytes && pooledBytes + bytes <= capacity else { return false }
            free[elements, default: []].append(pointer)
            pooledBytes += bytes
            return true
        }
        if !kept { ck_free_buffer(pointer) }
    }

    private static func trim() {
        let excess = lock.withLock { () -> [UnsafeMutablePointer<Float>] in
            var released: [UnsafeMutablePointer<Float>] = []
            while pooledBytes > capacity, let key = free.keys.max() {
                let pointer = free[key]!.removeLast()
                if free[key]!.isEmpty { free[key] = nil }
                pooledBytes -= key * MemoryLayout<Float>.stride
                released.append(pointer)
            }
            return released
        }
        for buffer in excess { ck_free_buffer(buffer) }
    }
}
