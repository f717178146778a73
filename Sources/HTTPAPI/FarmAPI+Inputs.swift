import FarmModel
import Foundation
import Hummingbird
import JobStore

extension FarmAPI {
    /// `POST /v1/images`, for a submit token or above: stores a PNG (at most 64 MiB) as a job input, once by its
    /// content, and answers its SHA-256 for a spec's `init_image` (img2img).
    func addInputRoutes(submit: APIRoutes) {
        let pool = self.pool
        submit.on(.post, "images") { request, _ in
            let data = try await Self.collect(request.body)
            guard let size = Self.pngSize(data) else { throw APIError(status: 400, "the body must be a PNG image", field: "body") }
            let limits = Limits().generation
            guard size.width <= limits.maxSide && size.height <= limits.maxSide else {
                throw APIError(status: 400, "the image is \(size.width)x\(size.height); sides may be at most \(limits.maxSide)", field: "body")
            }
            let hash = try await pool.run { try $0.storeBlob(data) }
            return try Self.json(StoredInput(sha256: hash, width: size.width, height: size.height), status: 201)
        }
    }

    /// The width and height in a PNG's header (its signature, then IHDR); nil when `data` does not start as a PNG.
    static func pngSize(_ data: Data) -> (width: Int, height: Int)? {
        let bytes = [UInt8](data.prefix(24))
        guard bytes.count == 24, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
            bytes[12..<16].elementsEqual(Array("IHDR".utf8))
        else { return nil }
        func number(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        let (width, height) = (number(16), number(20))
        return width > 0 && height > 0 ? (width, height) : nil
    }
}
