import Foundation

/// Why a file could not be mapped; callers wrap it in their own error type.
struct FileMappingError: Error {
    /// What failed, with the system's reason.
    let message: String
}

/// A read-only memory map of a whole file, unmapped on deinit. Checkpoints are
/// gigabytes: mapping lets the loaders read only the pages they convert, with no copy.
final class MappedFile {
    /// The file's bytes; valid while this object is alive.
    let bytes: UnsafeRawBufferPointer
    private let length: Int

    /// Maps `url`. Only regular files are accepted: a FIFO or a device would block or never end.
    init(_ url: URL) throws(FileMappingError) {
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else {
            throw FileMappingError(message: "cannot open the file (\(Self.lastError())); check the path and its permissions")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw FileMappingError(message: "cannot read the file's size (\(Self.lastError()))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw FileMappingError(message: "not a regular file; pass the path of a model file")
        }
        length = Int(status.st_size)
        guard length > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let address = mmap(nil, length, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != MAP_FAILED else {
            throw FileMappingError(message: "cannot map the file into memory (\(Self.lastError()))")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: length)
    }

    /// Lets the system drop this process's pages of `range` (part of `bytes`), e.g. once a tensor has been copied out:
    /// read pages of a file mapping count in the resident set until unmapped, so a loader that walks a 2 GB file
    /// would otherwise peak at the file plus its copy. The pages stay in the page cache; reading them again faults
    /// them back in from there. Whole pages are dropped, those the range touches included (only read, never written,
    /// so nothing is lost).
    func evict(_ range: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, let start = range.baseAddress, range.count > 0 else { return }
        precondition(start >= base && start + range.count <= base + length, "evict: the range lies outside the mapping")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (start - base) / page * page
        let end = min(length, ((start - base) + range.count + page - 1) / page * page)
        madvise(UnsafeMutableRawPointer(mutating: base + first), end - first, Int32(MADV_DONTNEED))
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), length) }
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }
}
