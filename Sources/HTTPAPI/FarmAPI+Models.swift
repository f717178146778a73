import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import JobStore

extension FarmAPI {
    /// The header a client may send with an upload: the SHA-256 it computed; a mismatch refuses the upload (422).
    static let modelHashHeader = HTTPField.Name("X-Model-SHA256")!
    /// The header that carries a checkpoint's sidecar config (base64) with an upload and with the bytes to a worker.
    static let modelConfigHeader = HTTPField.Name(ModelRecord.configHeader)!

    /// The model store's routes: `GET /v1/model-store` (the models, for a submit token or above), `PUT` and `DELETE
    /// /v1/model-store/{name}` (admin: add or replace a model, streamed to disk and hashed on the way; remove one), and
    /// `GET`/`HEAD /v1/models/{sha256}` (a model's bytes, for workers with any valid token; `Range: bytes=N-` resumes).
    func addModelRoutes(submit: APIRoutes, admin: APIRoutes) {
        let pool = self.pool
        let store = self.modelStore
        submit.on(.get, "model-store") { _, _ in
            try Self.json(try await pool.run { try $0.models() })
        }
        admin.on(.put, "model-store/:model") { request, context in
            let directory = try Self.requireStore(store)
            let name = context.parameters.get("model") ?? ""
            // A name that looks like a SHA-256 would read as one in `/v1/models/{sha256}` and in logs.
            guard !TaskParameters.isStoredImageName(name) else {
                throw APIError(status: 400, "a model name may not be a SHA-256 (64 hex digits)", field: "name")
            }
            let kind = request.uri.queryParameters.get("kind") ?? ModelRecord.guessKind(fileName: name)
            guard ModelRecord.kinds.contains(kind) else {
                throw APIError(status: 400, "kind must be one of \(ModelRecord.kinds.joined(separator: ", ")), got \(kind)", field: "kind")
            }
            let declared = request.headers[Self.modelHashHeader]?.lowercased()
            if let declared, !TaskParameters.isStoredImageName(declared) {
                throw APIError(status: 400, "X-Model-SHA256 must be 64 hex digits", field: "X-Model-SHA256")
            }
            // Checked before the bytes are written, so that a bad sidecar leaves nothing behind.
            let config = try request.headers[Self.modelConfigHeader].map(Self.sidecarText)
            let writer = try ModelUploadWriter(try directory.upload())
            for try await buffer in request.body { try await writer.append(buffer) }
            let stored: (sha256: String, size: Int64)
            do { stored = try await writer.finish(expectedSHA256: declared) } catch let error as StoreFileError {
                throw APIError(status: 422, error.message, field: "body")
            }
            let record = try await pool.run { try $0.addModel(name: name, kind: kind, sha256: stored.sha256, size: stored.size, config: config) }
            return try Self.json(record, status: 201)
        }
        admin.on(.delete, "model-store/:model") { _, context in
            let name = context.parameters.get("model") ?? ""
            guard let removed = try await pool.run({ try $0.removeModel(named: name) }) else {
                throw APIError(status: 404, "no model named \(name) in the store")
            }
            if !removed.stillUsed { store?.remove(removed.sha256) }
            return try Self.json(["name": name, "sha256": removed.sha256])
        }
        for method in [HTTPRequest.Method.get, .head] {
            submit.on(method, "models/:model") { request, context in
                try await Self.modelBytes(request, context: context, store: store, pool: pool)
            }
        }
    }

    /// The sidecar config an `X-Model-Config` header carries (base64 of a JSON object); 400 when it is not one.
    static func sidecarText(_ header: String) throws -> String {
        guard let data = Data(base64Encoded: header), let text = String(data: data, encoding: .utf8) else {
            throw APIError(status: 400, "X-Model-Config must be the base64 of the sidecar's JSON", field: ModelRecord.configHeader)
        }
        try JobStore.validateSidecar(text)
        return text
    }

    /// The store, or 404 when this coordinator runs without one (an API made for tests).
    static func requireStore(_ store: ModelDirectory?) throws -> ModelDirectory {
        guard let store else { throw APIError(status: 404, "this coordinator has no model store (farm coordinator --model-store DIR)") }
        return store
    }

    /// A stored model's bytes: all of them (200), or from `Range: bytes=N-` / `bytes=N-M` on (206 with
    /// `Content-Range`); 416 for a range outside the file; 404 for a hash the store does not list. The model's sidecar
    /// config, if any, rides in `X-Model-Config` on every answer, so that a worker gets it with the bytes.
    static func modelBytes(_ request: Request, context: APIRequestContext, store: ModelDirectory?, pool: DatabasePool) async throws -> Response {
        let directory = try requireStore(store)
        let hash = (context.parameters.get("model") ?? "").lowercased()
        let lookup: (stored: Bool, config: String?) =
            TaskParameters.isStoredImageName(hash)
            ? try await pool.run { store in try store.isStoredModel(sha256: hash) ? (true, try store.modelSidecar(sha256: hash)) : (false, nil) }
            : (false, nil)
        guard lookup.stored, let file = directory.file(hash) else { throw APIError(status: 404, "no stored model has SHA-256 \(hash.prefix(64))") }
        let config = lookup.config
        let size = ((try? FileManager.default.attributesOfItem(atPath: file.path))?[.size] as? NSNumber)?.intValue ?? 0
        var headers: HTTPFields = [.contentType: "application/octet-stream", .acceptRanges: "bytes", .eTag: "\"\(hash)\""]
        if let config { headers[Self.modelConfigHeader] = Data(config.utf8).base64EncodedString() }
        var range = 0..<size
        var status = HTTPResponse.Status.ok
        if let header = request.headers[.range] {
            guard let asked = parseRange(header, size: size) else {
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers, body: ResponseBody())
            }
            range = asked
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
        }
        headers[.contentLength] = String(range.count)
        if request.method == .head || range.isEmpty { return Response(status: status, headers: headers, body: ResponseBody()) }
        // FileIO reads on NIO's thread pool, in chunks: a model of gigabytes never sits in memory.
        let body = try await FileIO().loadFile(path: file.path, range: range.lowerBound...(range.upperBound - 1), context: context)
        return Response(status: status, headers: headers, body: body)
    }

    /// The byte range of `Range: bytes=N-` or `bytes=N-M` within `size` bytes; nil when malformed, several, or
    /// starting at or past the end.
    static func parseRange(_ header: String, size: Int) -> Range<Int>? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let parts = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Int(parts[0].trimmingCharacters(in: .whitespaces)), start >= 0, start < size else { return nil }
        let endText = parts[1].trimmingCharacters(in: .whitespaces)
        if endText.isEmpty { return start..<size }
        guard let end = Int(endText), end >= start else { return nil }
        return start..<min(end + 1, size)
    }
}

/// Writes an upload's chunks on a serial dispatch queue of its own, so that file writes never block NIO's event
/// loops or Swift's cooperative pool.
final class ModelUploadWriter: @unchecked Sendable {
    private let upload: ModelDirectory.Upload
    private let queue = DispatchQueue(label: "farm.http.model-upload")

    /// Writes through `upload`.
    init(_ upload: ModelDirectory.Upload) throws { self.upload = upload }

    /// Writes and hashes the next chunk.
    func append(_ buffer: ByteBuffer) async throws {
        let bytes = Array(buffer.readableBytesView)
        try await run { try self.upload.append(bytes) }
    }

    /// Finishes the file (see `ModelDirectory.Upload.finish`).
    func finish(expectedSHA256: String?) async throws -> (sha256: String, size: Int64) {
        try await run { try self.upload.finish(expectedSHA256: expectedSHA256) }
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
