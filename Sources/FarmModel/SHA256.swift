import CSodium
import Foundation

/// SHA-256 from libsodium (which libzmq already links): migration checksums, token hashes and the content
/// addresses of input images.
public enum SHA256 {
    /// Lowercase hex of the digest.
    public static func hex(of data: Data) -> String { hex(digest: digest(of: data)) }

    /// Lowercase hex of a digest already computed.
    public static func hex(digest: [UInt8]) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    /// The 32-byte digest.
    public static func digest(of data: Data) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        data.withUnsafeBytes { bytes in
            _ = crypto_hash_sha256(&digest, bytes.bindMemory(to: UInt8.self).baseAddress, UInt64(bytes.count))
        }
        return digest
    }
}
