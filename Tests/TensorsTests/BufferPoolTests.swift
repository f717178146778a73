import CKernels
import Foundation
import Tensors
import Testing

/// Buffers freed inside `unpooled`, and buffers above `largestPooledBytes`, go back to the system;
/// others are reused. (Sizes no other test asks for, as the pool is shared by the whole process.)
@Test func unpooledAndHugeBuffersAreNotKept() {
    let inside = BufferPool.track {
        BufferPool.unpooled { _ = Tensor(zeros: [12_345]) }
        _ = Tensor(zeros: [12_345])
    }
    #expect(inside.systemAllocations == 2 && inside.reuses == 0)
    let outside = BufferPool.track {
        _ = Tensor(zeros: [12_346])
        _ = Tensor(zeros: [12_346])
    }
    #expect(outside.systemAllocations == 1 && outside.reuses == 1)
    let huge = BufferPool.largestPooledBytes / 4 + 1
    let big = BufferPool.track {
        _ = Tensor(zeros: [huge])
        _ = Tensor(zeros: [huge])
    }
    #expect(big.systemAllocations == 2 && big.reuses == 0)
}

/// Inside `unpooled`, a freed buffer serves the scope's next request of its size (a VAE decode's repeated
/// full-resolution sizes then cost no page faults); the scope keeps only its most recent `recycledBytes`, and nothing
/// outlives it.
@Test func unpooledScopeRecyclesItsOwnRecentBuffers() {
    let size = 12_348
    let within = BufferPool.track {
        BufferPool.unpooled {
            for _ in 0..<3 { _ = Tensor(zeros: [size]) }
        }
    }
    #expect(within.systemAllocations == 1 && within.reuses == 2)
    let after = BufferPool.track { _ = Tensor(zeros: [size]) }
    #expect(after.systemAllocations == 1 && after.reuses == 0)
    // Two buffers of 0.6 of the limit: keeping the second pushes out the first, so only the second is reused.
    let first = BufferPool.recycledBytes / 4 * 3 / 5
    let evicted = BufferPool.track {
        BufferPool.unpooled {
            _ = Tensor(zeros: [first])
            _ = Tensor(zeros: [first + 1])
            _ = Tensor(zeros: [first + 1])
            _ = Tensor(zeros: [first])
        }
    }
    #expect(evicted.systemAllocations == 3 && evicted.reuses == 1)
}

/// `drain(atLeast:)` returns the large buffers and keeps the small ones.
@Test func drainAtLeastKeepsSmallBuffers() {
    let small = 12_347
    let large = (1 << 20) / 4 + 3
    _ = Tensor(zeros: [small])
    _ = Tensor(zeros: [large])
    BufferPool.drain(atLeast: 1 << 20)
    let after = BufferPool.track {
        _ = Tensor(zeros: [small])
        _ = Tensor(zeros: [large])
    }
    #expect(after.reuses == 1 && after.systemAllocations == 1)
}

/// Tensor buffers from 4 MiB on start on a 2 MiB boundary (whole huge pages) unless FARM_HUGEPAGES=0, smaller ones on
/// 64 bytes; every byte of an odd size is usable, and freeing takes them back.
@Test func largeBuffersStartOnHugePageBoundaries() {
    for bytes in [1, 4096 + 3, (4 << 20) - 4, 4 << 20, (9 << 20) + 12, 40 << 20] {
        let buffer = ck_alloc_buffer(bytes)!
        let address = UInt(bitPattern: buffer)
        #expect(address % 64 == 0)
        if bytes >= 4 << 20 && ck_huge_pages() != 0 { #expect(address % UInt(2 << 20) == 0) }
        memset(buffer, 0x5a, bytes)
        #expect(buffer.load(fromByteOffset: bytes - 1, as: UInt8.self) == 0x5a)
        ck_free_buffer(buffer)
    }
}
