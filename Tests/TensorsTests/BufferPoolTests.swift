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
