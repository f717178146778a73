import FarmModel
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The folder a coordinator keeps the model store's bytes in (`--model-store`): each model under the SHA-256 of its
/// bytes (content-addressed, so two names of the same file share it), written through `Upload` (a temporary file
/// hashed as it is written, fsync, rename), so that a reader never sees half a model. The database's `models` table
/// holds the names, kinds and sizes.
public struct ModelDirectory: Sendable {
    /// The folder, absolute.
    public let root: URL

    /// Uses `path` (made if missing); throws when it cannot be made.
    public init(path: String) throws {
        root = try StoreFolder.make(path: path, role: "the model store folder", writable: false)
    }

    /// The default folder: `$XDG_DATA_HOME/farm/models`, else `~/.local/share/farm/models`.
    public static var defaultPath: String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.local/share"
        return base + "/farm/models"
    }

    /// The file of the model with SHA-256 `sha256`, if the store has it (nil for anything that is not a SHA-256).
    public func file(_ sha256: String) -> URL? {
        guard TaskParameters.isStoredImageName(sha256) else { return nil }
        let url = root.appendingPathComponent(sha256)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// Removes the file of `sha256` (nothing when absent).
    public func remove(_ sha256: String) {
        guard let url = file(sha256) else { return }
        try? FileManager.default.removeItem(at: url)
    }

    /// Starts writing a model: bytes go to a temporary file in the store and through a SHA-256 as they arrive.
    public func upload() throws -> Upload { try Upload(root: root) }

    /// One model being written: `append` the bytes in order, then `finish` (or `abandon`, which a deinit also does).
    public final class Upload {
        private let root: URL
        private let temporary: URL
        private let handle: FileHandle
        private var hasher = SHA256.Hasher()
        private var done = false
        /// Bytes written so far.
        public private(set) var size: Int64 = 0

        init(root: URL) throws {
            self.root = root
            temporary = root.appendingPathComponent(".upload-\(UUID().uuidString).tmp")
            guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
                throw StoreFileError(path: temporary.path, message: "cannot create a file in the model store (check its permissions and free space)")
            }
            handle = try FileHandle(forWritingTo: temporary)
        }

        /// Writes and hashes the next bytes.
        public func append<Bytes: Collection<UInt8>>(_ bytes: Bytes) throws {
            let data = Data(bytes)
            do { try handle.write(contentsOf: data) } catch {
                throw StoreFileError(path: temporary.path, message: "cannot write (\((error as NSError).localizedDescription)); check the free space")
            }
            hasher.update(data)
            size += Int64(data.count)
        }

        /// Makes the file the store's copy of its SHA-256 and returns that hash and the size; throws (and keeps
        /// nothing) when `expectedSHA256` is given and differs: the bytes were damaged on the way.
        public func finish(expectedSHA256: String?) throws -> (sha256: String, size: Int64) {
            done = true
            try? handle.synchronize()
            try? handle.close()
            let sha256 = hasher.finalHex()
            if let expectedSHA256, expectedSHA256.lowercased() != sha256 {
                try? FileManager.default.removeItem(at: temporary)
                throw StoreFileError(
                    path: temporary.path,
                    message: "the bytes received hash to \(sha256), not the \(expectedSHA256) declared: the upload was damaged; send it again")
            }
            let target = root.appendingPathComponent(sha256)
            guard rename(temporary.path, target.path) == 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(at: temporary)
                throw StoreFileError(path: target.path, message: "cannot move the upload into place (\(reason))")
            }
            return (sha256, size)
        }

        /// Drops what was written.
        public func abandon() {
            guard !done else { return }
            done = true
            try? handle.close()
            try? FileManager.default.removeItem(at: temporary)
        }

        deinit { abandon() }
    }
}
