import FarmModel
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The folder a coordinator keeps result images in (`--image-dir`), instead of PostgreSQL: each PNG under the
/// SHA-256 of its bytes (`ab/abcdef….png`, so that one folder does not hold millions of files), written
/// atomically (a temporary file, fsync, rename, fsync of the folder), so that a reader never sees half an image
/// and a crash leaves either the whole file or none. The database keeps the file's absolute path and size.
public struct ImageDirectory: Sendable {
    /// The folder, absolute.
    public let root: URL

    /// Uses `path` (made if missing); throws when it cannot be made or written to.
    public init(path: String) throws {
        root = try StoreFolder.make(path: path, role: "the image folder", writable: true)
    }

    /// Writes `png` under its SHA-256 `hash` (hex; the caller has it already) unless a file of that name and size is
    /// there already; returns its path and size.
    public func write(_ png: Data, hash: String) throws -> (path: String, bytes: Int) {
        let folder = root.appendingPathComponent(String(hash.prefix(2)))
        let target = folder.appendingPathComponent(hash + ".png").path
        var existing = stat()
        if stat(target, &existing) == 0, Int(existing.st_size) == png.count { return (target, png.count) }
        if mkdir(folder.path, 0o755) != 0 && errno != EEXIST {
            throw StoreFileError(path: folder.path, message: "cannot make the folder (\(String(cString: strerror(errno))))")
        }
        let temporary = folder.appendingPathComponent(".\(hash).\(UUID().uuidString.prefix(8)).tmp").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreFileError(path: temporary, message: "cannot create (\(String(cString: strerror(errno))))") }
        var closed = false
        defer {
            if !closed { close(fd) }
        }
        do {
            try png.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { throw StoreFileError(path: temporary, message: "cannot write (\(String(cString: strerror(errno))))") }
                    offset += written
                }
            }
            guard fsync(fd) == 0 else { throw StoreFileError(path: temporary, message: "cannot fsync (\(String(cString: strerror(errno))))") }
            closed = true
            guard close(fd) == 0 else { throw StoreFileError(path: temporary, message: "cannot close (\(String(cString: strerror(errno))))") }
            guard rename(temporary, target) == 0 else {
                throw StoreFileError(path: target, message: "cannot rename into place (\(String(cString: strerror(errno))))")
            }
        } catch {
            unlink(temporary)
            throw error
        }
        // The rename is durable only once the folder's entry is on disk.
        let folderFD = open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if folderFD >= 0 {
            fsync(folderFD)
            close(folderFD)
        }
        return (target, png.count)
    }

    /// The bytes of the image file at `path` (as the database names it).
    public static func read(path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StoreFileError(
                path: path, message: "the image file is missing or unreadable; the coordinator's --image-dir must be mounted at the same path here")
        }
        return data
    }

    /// Removes the file at `path`; returns the bytes it held (0 when it was already gone).
    public static func remove(path: String) -> Int64 {
        var status = stat()
        guard stat(path, &status) == 0 else { return 0 }
        return unlink(path) == 0 ? Int64(status.st_size) : 0
    }
}
