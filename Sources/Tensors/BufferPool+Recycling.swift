import CKernels

/// The buffers an `unpooled` scope frees, kept for its own next requests of the same size: a VAE decode asks for
/// the same full-resolution sizes again and again (a resnet block's norm, convolution, norm, convolution), and a
/// buffer fresh from the system costs its page faults and the kernel's zeroing of every page (a tenth of a
/// 512×512 decode's time). Only the most recent `recycledBytes` are kept, so the scope's peak grows by at most that.
final class RecycleBin {
    private var buffers: [(elements: Int, pointer: UnsafeMutablePointer<Float>)] = []
    private var bytes = 0
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// A kept buffer of exactly `elements` floats (the most recently freed), or nil.
    func take(_ elements: Int) -> UnsafeMutablePointer<Float>? {
        guard let index = buffers.lastIndex(where: { $0.elements == elements }) else { return nil }
        bytes -= elements * MemoryLayout<Float>.stride
        return buffers.remove(at: index).pointer
    }

    /// Keeps a freed buffer, returning the oldest ones to the system while the bin holds more than its limit.
    func keep(_ pointer: UnsafeMutablePointer<Float>, elements: Int) {
        buffers.append((elements, pointer))
        bytes += elements * MemoryLayout<Float>.stride
        while bytes > limit, !buffers.isEmpty {
            let oldest = buffers.removeFirst()
            bytes -= oldest.elements * MemoryLayout<Float>.stride
            ck_free_buffer(oldest.pointer)
        }
    }

    /// Returns every kept buffer to the system.
    func empty() {
        for buffer in buffers { ck_free_buffer(buffer.pointer) }
        buffers = []
        bytes = 0
    }
}
