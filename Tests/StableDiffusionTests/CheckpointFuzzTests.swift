import Foundation
import StableDiffusion
import Tensors
import TestSupport
import Testing

/// One deterministic way of damaging good.ckpt, applied at every position.
struct CheckpointMutation: Sendable, CustomTestStringConvertible {
    enum Kind: Sendable {
        /// XOR one byte with a mask.
        case flip(UInt8)
        /// Set one byte to a value.
        case set(UInt8)
        /// Keep only the first `position` bytes.
        case truncate
        /// Overwrite 1–4 bytes at seeded random positions with seeded random values, `count` times.
        case random(seed: UInt64, count: Int)
    }

    let kind: Kind
    /// With checksums off, damage to the pickle reaches the unpickler instead of failing the CRC.
    let verifyChecksums: Bool

    var testDescription: String { "\(kind) \(verifyChecksums ? "with" : "without") checksums" }

    static let all: [CheckpointMutation] = [true, false].flatMap { verify in
        [Kind.flip(0xFF), .flip(0x01), .flip(0x80), .set(0), .set(0xFF), .truncate, .random(seed: 7, count: 3000)]
            .map { CheckpointMutation(kind: $0, verifyChecksums: verify) }
    }
}

/// One damaged copy: bytes to overwrite, or a length to cut the file to.
private enum Damage {
    case bytes([(position: Int, value: UInt8)])
    case truncation(Int)
}

/// The damaged copies a mutation makes of `original`.
private func damages(_ kind: CheckpointMutation.Kind, of original: Data) -> [Damage] {
    switch kind {
    case .flip(let mask):
        return original.indices.map { .bytes([($0, original[$0] ^ mask)]) }
    case .set(let value):
        return original.indices.filter { original[$0] != value }.map { .bytes([($0, value)]) }
    case .truncate:
        return (0..<original.count).map { .truncation($0) }
    case .random(let seed, let count):
        var random = SeededGenerator(seed: seed)
        return (0..<count).map { _ in
            .bytes(
                (0...(random.next() % 4)).map { _ in
                    (Int(random.next() % UInt64(original.count)), UInt8(truncatingIfNeeded: random.next()))
                })
        }
    }
}

/// Shapes and exact bit patterns of a state dict, for comparing two loads.
private func fingerprint(_ tensors: [String: Tensor]) -> [String: [[UInt32]]] {
    tensors.mapValues { [$0.shape.map { UInt32($0) }, $0.scalars.map(\.bitPattern)] }
}

/// Loading a damaged checkpoint either succeeds or throws a CheckpointError naming the file; it never crashes.
@Test(arguments: CheckpointMutation.all)
func damagedCheckpointLoadsOrThrows(_ mutation: CheckpointMutation) throws {
    let original = try Data(contentsOf: PickleFixtures.url("good.ckpt"))
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("farm-fuzz-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = folder.appendingPathComponent("damaged.ckpt")
    try original.write(to: url)
    // Damage is written into one file and undone after each load: rewriting whole copies costs
    // far more than the loads themselves.
    let handle = try FileHandle(forUpdating: url)
    defer { try? handle.close() }

    let cases = damages(mutation.kind, of: original)
    let reference = try fingerprint(TorchCheckpoint.load(url))
    var loaded = 0
    var refused = 0
    var codes = Set<CheckpointError.Code>()
    for damage in cases {
        switch damage {
        case .bytes(let edits):
            for edit in edits {
                try handle.seek(toOffset: UInt64(edit.position))
                try handle.write(contentsOf: [edit.value])
            }
        case .truncation(let length):
            try handle.truncate(atOffset: UInt64(length))
        }
        do throws(CheckpointError) {
            let contents = try TorchCheckpoint.read(url, verifyChecksums: mutation.verifyChecksums)
            loaded += 1
            if mutation.verifyChecksums {
                // Every byte that reaches a tensor is covered by a CRC: damage that goes unnoticed
                // must have left the values alone.
                #expect(fingerprint(contents.tensors) == reference, "\(damage) changed values unnoticed")
            }
        } catch {
            refused += 1
            codes.insert(error.code)
            #expect(error.description.hasPrefix(url.path + ": ") && !error.message.isEmpty, "\(error)")
        }
        switch damage {
        case .bytes(let edits):
            for edit in edits {
                try handle.seek(toOffset: UInt64(edit.position))
                try handle.write(contentsOf: [original[edit.position]])
            }
        case .truncation(let length):
            try handle.seek(toOffset: UInt64(length))
            try handle.write(contentsOf: original[length...])
        }
    }
    #expect(try Data(contentsOf: url) == original, "the damage was not undone")
    #expect(loaded + refused == cases.count)
    if case .truncate = mutation.kind {
        // No proper prefix of a zip has its end record where it belongs.
        #expect(loaded == 0)
    } else {
        #expect(refused > 0, "no damage was noticed")
    }
    print(
        "\(mutation.testDescription): \(cases.count) cases, \(loaded) loaded, \(refused) refused "
            + "(\(codes.map(\.rawValue).sorted().joined(separator: ", ")))")
}
