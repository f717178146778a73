import CSodium
import Foundation

extension SHA256 {
    /// A SHA-256 computed piece by piece, so that a model of gigabytes is hashed while it streams past and never
    /// held in memory.
    public struct Hasher {
        private var state = crypto_hash_sha256_state()

        /// A hasher with nothing fed yet.
        public init() { crypto_hash_sha256_init(&state) }

        /// Feeds the next bytes.
        public mutating func update<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
            let done = bytes.withContiguousStorageIfAvailable { buffer in
                _ = crypto_hash_sha256_update(&state, buffer.baseAddress, UInt64(buffer.count))
            }
            if done == nil {
                let copy = [UInt8](bytes)
                _ = crypto_hash_sha256_update(&state, copy, UInt64(copy.count))
            }
        }

        /// Feeds the next bytes of `data`.
        public mutating func update(_ data: Data) {
            data.withUnsafeBytes { raw in
                _ = crypto_hash_sha256_update(&state, raw.bindMemory(to: UInt8.self).baseAddress, UInt64(raw.count))
            }
        }

        /// Lowercase hex of the digest of everything fed (the hasher is spent).
        public mutating func finalHex() -> String {
            var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
            crypto_hash_sha256_final(&state, &digest)
            return SHA256.hex(digest: digest)
        }
    }

    /// Lowercase hex of a file's digest, read 4 MiB at a time.
    public static func hex(ofFile url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = Hasher()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(chunk) }
        return hasher.finalHex()
    }
}
