import Foundation
import Tensors

/// Loads `.ckpt` checkpoints (PyTorch's zip + pickle format) without running any code:
/// the pickle is interpreted by a restricted unpickler that accepts only the globals a
/// state dict needs, and tensors are read from the memory-mapped archive.
///
/// Decisions:
/// - float16 and bfloat16 tensors come back as stored (`Tensor.element`; products widen them), every other one
///   as Float32: float64 narrowed, integer and bool tensors (such as CLIP's int64 `position_ids`) converted,
///   exactly for magnitudes up to 2²⁴, which covers the ids and counters checkpoints hold.
/// - The state dict is the top-level dict's `state_dict` entry when there is one (or `string_to_param`,
///   `params_ema`, `params`), else the top-level dict itself. SD checkpoints are flat (`model.diffusion_model.…weight`), so nested
///   dicts are not flattened; state-dict entries that are not tensors are reported in
///   `Contents.skippedKeys`. Nothing outside the state dict (optimizer states, EMA copies
///   under other keys) is ever converted.
/// - numpy scalars (a `global_step` saved as `numpy.int64`) and Lightning's `ModelCheckpoint`
///   are accepted as inert placeholders, so checkpoints that carry them still load; they are
///   never decoded, and one found in the state dict is skipped like any non-tensor.
/// - Only stored (uncompressed) zip entries are read: that is what `torch.save` writes, and
///   inflating would copy gigabytes that mapping avoids.
public enum TorchCheckpoint {
    /// What a checkpoint's state dict holds.
    public struct Contents {
        /// The tensors by state-dict key: halves as stored, other types as Float32.
        public var tensors: [String: Tensor]
        /// State-dict keys whose values are not tensors or that the `keep` filter rejected (a key that is not a
        /// string reads `<int key>` etc.).
        public var skippedKeys: [String]
    }

    /// The flat state dict of the checkpoint at `url` (halves as stored): every tensor, or those whose keys `keep` accepts.
    public static func load(_ url: URL, keep: (String) -> Bool = { _ in true }) throws(CheckpointError) -> [String: Tensor] {
        try read(url, keep: keep).tensors
    }

    /// The checkpoint's state dict and the keys skipped from it. With `verifyChecksums`, every
    /// zip entry read is checked against its CRC-32 (about one more pass over the bytes). Tensors whose
    /// keys `keep` rejects (an EMA copy, scheduler buffers) are neither checked nor converted: they are skipped.
    public static func read(
        _ url: URL, verifyChecksums: Bool = true,
        keep: (String) -> Bool = { _ in true }
    ) throws(CheckpointError) -> Contents {
        do {
            return try Loader(url, verifyChecksums: verifyChecksums).contents(keep: keep)
        } catch var error {
            error.file = url.path
            throw error
        }
    }
}

/// One load: the mapped file, its archive and the unpickled object graph.
private struct Loader {
    /// Output elements allowed beyond one per byte of the file. Views may share storage, and
    /// zero strides can make a tiny storage look huge, so the total is capped by the file's size.
    private static let elementAllowance = 1 << 24

    private let file: MappedFile
    private let archive: ZipArchive
    private let verify: Bool
    private let prefix: String

    init(_ url: URL, verifyChecksums: Bool) throws(CheckpointError) {
        do {
            file = try MappedFile(url)
        } catch {
            throw CheckpointError(.unreadable, error.message)
        }
        archive = try ZipArchive(file)
        verify = verifyChecksums
        // torch.save writes `<name>/data.pkl`, `<name>/data/<key>`, `<name>/version`, …
        let pickles = archive.entries.filter { entry in
            let parts = entry.name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl" && !parts[0].isEmpty
        }
        guard pickles.count == 1, let pickle = pickles.first else {
            throw CheckpointError(
                .unsupportedContent,
                pickles.isEmpty
                    ? "the archive has no <name>/data.pkl, so it is not a torch.save checkpoint"
                    : "the archive has \(pickles.count) data.pkl files; a torch.save checkpoint has one")
        }
        prefix = String(pickle.name.dropLast("data.pkl".count))
    }

    func contents(keep: (String) -> Bool) throws(CheckpointError) -> TorchCheckpoint.Contents {
        if let order = archive.entry(named: prefix + "byteorder") {
            if verify { try archive.verify(order) }
            let text = String(decoding: try archive.contents(of: order), as: UTF8.self)
            guard text == "little" else {
                throw CheckpointError(
                    .unsupportedContent,
                    "the checkpoint was written with '\(text.prefix(16))' byte "
                        + "order; only little-endian checkpoints are read: re-save it on a little-endian machine")
            }
        }
        let pickleEntry = archive.entry(named: prefix + "data.pkl")!
        let pickle = try archive.contents(of: pickleEntry)
        if verify { try archive.verify(pickleEntry) }
        let unpickler = Unpickler(pickle) { storage throws(CheckpointError) in try self.check(storage) }
        let root = try unpickler.load()

        guard case .dict(let rootIndex) = root else {
            throw CheckpointError(
                .unsupportedContent,
                "the checkpoint holds a \(root.kind), not a dict of tensors; "
                    + "this loader reads state-dict checkpoints only")
        }
        var stateIndex = rootIndex
        // `state_dict`: Lightning checkpoints; `string_to_param`: the web UI's textual-inversion embeddings;
        // `params_ema` (preferred, the averaged weights) or `params`: Real-ESRGAN's upscalers.
        let nested = ["state_dict", "string_to_param", "params_ema", "params"]
        var chosen = nested.count
        for (key, value) in unpickler.dicts[rootIndex] {
            if case .string(let name) = key, let rank = nested.firstIndex(of: name), rank < chosen, case .dict(let index) = value {
                (stateIndex, chosen) = (index, rank)
            }
        }

        // Select and check every tensor first, in file order, so that the error reported is the
        // file's first problem; then checksum and convert, which dominate the time, in parallel.
        var skipped: [String] = []
        var order: [String] = []
        var values: [String: PickleValue] = [:]
        for (key, value) in unpickler.dicts[stateIndex] {
            guard case .string(let name) = key else {
                skipped.append("<\(key.kind) key>")
                continue
            }
            // A repeated key replaces the earlier value, as in Python, keeping its first place.
            if values.updateValue(value, forKey: name) == nil { order.append(name) }
        }
        var names: [String] = []
        var references: [TensorReference] = []
        var budget = file.bytes.count + Self.elementAllowance
        for name in order {
            guard case .tensor(let index) = values[name], keep(name) else {
                skipped.append(name)
                continue
            }
            let reference = unpickler.tensors[index]
            do {
                try reference.validate(storageCount: unpickler.storages[reference.storage].count)
                try spend(reference, from: &budget)
            } catch var error {
                error.tensorKey = name
                throw error
            }
            names.append(name)
            references.append(reference)
        }

        let storageBytes = try unpickler.storages.map { storage throws(CheckpointError) in
            try archive.contents(of: entry(for: storage))
        }
        if verify {
            let used = Array(Set(references.map(\.storage))).sorted()
            let checksums = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: used.count)
            defer { checksums.deallocate() }
            concurrently(
                used.count, largestFirst: { storageBytes[used[$0]].count },
                body: { part in
                    checksums[part] = CRC32.checksum(storageBytes[used[part]])
                    file.evict(storageBytes[used[part]])
                })
            for (part, storage) in used.enumerated() {
                let entry = entry(for: unpickler.storages[storage])
                guard checksums[part] == entry.crc32 else {
                    var error = ZipArchive.checksumMismatch(entry)
                    error.tensorKey = names[references.firstIndex { $0.storage == storage }!]
                    throw error
                }
            }
        }

        var outputs = references.map { Tensor(uninitialized: $0.shape, element: unpickler.storages[$0.storage].type.resident) }
        let destinations = outputs.indices.map { outputs[$0].mutableRawPointer() }
        concurrently(
            references.count, largestFirst: { outputs[$0].count },
            body: { part in
                let reference = references[part]
                reference.gather(
                    from: storageBytes[reference.storage], type: unpickler.storages[reference.storage].type,
                    into: destinations[part])
                // Views sharing this storage fault the pages back in; SD checkpoints have one view per storage.
                file.evict(storageBytes[reference.storage])
            })
        let tensors = Dictionary(uniqueKeysWithValues: zip(names, outputs))
        return TorchCheckpoint.Contents(tensors: tensors, skippedKeys: skipped)
    }

    /// Runs `body` for each index on the engine's compute threads. Sizes range from one element to
    /// tens of millions, so each thread takes the next index when it is done, largest first.
    private func concurrently(_ count: Int, largestFirst size: (Int) -> Int, body: (Int) -> Void) {
        let order = (0..<count).sorted { size($0) > size($1) }
        let lock = NSLock()
        var next = 0
        parallelParts(count, parts: min(count, ComputeThreads.count)) { _, _ in
            while true {
                let position = lock.withLock { () -> Int in
                    defer { next += 1 }
                    return next
                }
                guard position < count else { return }
                body(order[position])
            }
        }
    }

    /// The zip entry of a storage; `check` has made sure it exists.
    private func entry(for storage: StorageReference) -> ZipArchive.Entry {
        archive.entry(named: prefix + "data/" + storage.key)!
    }

    /// Called for each storage a persistent id names: its zip entry must exist, be stored and hold it.
    private func check(_ storage: StorageReference) throws(CheckpointError) {
        guard let entry = archive.entry(named: prefix + "data/" + storage.key) else {
            throw CheckpointError(
                .corruptArchive,
                "the pickle names storage '\(storage.key)' but the archive has no "
                    + "entry \(prefix)data/\(storage.key); the file is incomplete: download it again")
        }
        _ = try archive.contents(of: entry)
        let (bytes, overflow) = storage.count.multipliedReportingOverflow(by: storage.type.elementSize)
        guard !overflow, bytes <= entry.size else {
            throw CheckpointError(
                .corruptArchive,
                "storage '\(storage.key)' claims \(storage.count) "
                    + "\(storage.type.rawValue) elements but its entry holds \(entry.size) bytes; the file is damaged: "
                    + "download it again")
        }
    }

    /// Takes a tensor's elements from what the file's size allows the whole checkpoint.
    private func spend(_ reference: TensorReference, from budget: inout Int) throws(CheckpointError) {
        let count = reference.elementCount ?? 0
        guard count <= budget else {
            throw CheckpointError(
                .limitExceeded,
                "size \(reference.shape) would take the checkpoint past "
                    + "\(file.bytes.count + Self.elementAllowance) Float32 elements, more than its \(file.bytes.count) "
                    + "bytes can hold; the file is damaged or hostile")
        }
        budget -= count
    }
}
