import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A file of the farm's stores (an image, a model) could not be written, read or removed; says which and what to check.
public struct StoreFileError: Error, CustomStringConvertible {
    /// The file or folder concerned.
    public var path: String
    /// What failed, with the system's reason, and what to do about it.
    public var message: String

    /// The one-line message.
    public var description: String { "\(path): \(message)" }
}

/// The folder setup that `ImageDirectory` and `ModelDirectory` share, so that both fail the same way with a message
/// that names the folder's role.
enum StoreFolder {
    /// Makes the folder at `path` (and its parents) if missing and returns it absolute; throws naming `role` (for
    /// example "the image folder") when it cannot be made, or, with `writable`, when this user cannot write to it.
    static func make(path: String, role: String, writable: Bool) throws -> URL {
        let root = URL(fileURLWithPath: path).standardizedFileURL
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        } catch {
            throw StoreFileError(path: root.path, message: "cannot make \(role) (\((error as NSError).localizedDescription))")
        }
        // Checked here rather than at the first write, so that a daemon refuses to start instead of failing later.
        if writable, access(root.path, W_OK | X_OK) != 0 {
            throw StoreFileError(path: root.path, message: "\(role) is not writable by this user (\(String(cString: strerror(errno))))")
        }
        return root
    }
}
