import Foundation
import StableDiffusion
import Tensors
import Testing

/// The .ckpt fixtures written by Tools/make_pickle_fixtures.py.
enum PickleFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pickle")

    /// A tensor's expected shape and values (already converted to Float32 by PyTorch).
    struct ExpectedTensor: Decodable {
        let shape: [Int]
        let values: [Double]
    }

    struct GoodFile: Decodable {
        let files: [String]
        let tensors: [String: ExpectedTensor]
    }

    struct LightningFile: Decodable {
        let tensors: [String: ExpectedTensor]
        let skipped: [String]
    }

    /// One hostile or damaged file and the error it must produce.
    struct HostileCase: Decodable, Sendable, CustomTestStringConvertible {
        let file: String
        let code: String
        let message: String
        let key: String?
        var testDescription: String { file }
    }

    struct HostileFile: Decodable {
        let pwned: String
        let cases: [HostileCase]
    }

    static func decode<T: Decodable>(_ type: T.Type, _ name: String) -> T? {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent(name)) else { return nil }
        return try? JSONDecoder().decode(type, from: data)
    }

    static let good = decode(GoodFile.self, "good.json")
    static let lightning = decode(LightningFile.self, "lightning.json")
    static let hostile = decode(HostileFile.self, "hostile.json")
    static let hostileCases = hostile?.cases ?? []
    static let goodFiles = good?.files ?? []

    static func url(_ name: String) -> URL { folder.appendingPathComponent(name) }
}

/// Checks `tensors` against PyTorch's values bit for bit (float16/bfloat16/int64 convert exactly).
func expectTensors(
    _ tensors: [String: Tensor], match expected: [String: PickleFixtures.ExpectedTensor],
    _ file: String
) {
    #expect(Set(tensors.keys) == Set(expected.keys), "\(file): keys differ")
    for (key, reference) in expected {
        guard let tensor = tensors[key] else { continue }
        #expect(tensor.shape == reference.shape, "\(file): \(key) shape")
        let actual = tensor.scalars.map(\.bitPattern)
        let wanted = reference.values.map { Float($0).bitPattern }
        #expect(actual == wanted, "\(file): \(key) values \(tensor.scalars.prefix(8)) vs \(reference.values.prefix(8))")
    }
}

@Test func fixturesArePresent() throws {
    let good = try #require(PickleFixtures.good)
    #expect(good.files.count == 5)
    #expect(good.tensors.count == 19)
    #expect(PickleFixtures.hostileCases.count >= 40)
    // Every hostile file has an expectation (the two that load are tested on their own).
    let listed = Set(PickleFixtures.hostileCases.map(\.file))
    let present = try FileManager.default.contentsOfDirectory(atPath: PickleFixtures.url("hostile").path)
    for name in present where !["deep_lists.ckpt", "duplicate_keys.ckpt"].contains(name) {
        #expect(listed.contains("hostile/" + name), "no expectation for hostile/\(name)")
    }
}

@Test(arguments: PickleFixtures.goodFiles)
func goodCheckpointLoadsExactValues(_ file: String) throws {
    let good = try #require(PickleFixtures.good)
    let contents = try TorchCheckpoint.read(PickleFixtures.url(file))
    #expect(contents.skippedKeys.isEmpty)
    expectTensors(contents.tensors, match: good.tensors, file)
}

@Test func goodCheckpointHasTheViewsAndTypesItWasWrittenWith() throws {
    let tensors = try TorchCheckpoint.load(PickleFixtures.url("good.ckpt"))
    // The SD key layout, flat.
    #expect(tensors["model.diffusion_model.input_blocks.0.0.weight"]?.shape == [4, 3, 3, 3])
    // int64 position ids become Float32 0…6.
    #expect(tensors["cond_stage_model.position_ids"]?.scalars == [0, 1, 2, 3, 4, 5, 6])
    #expect(tensors["num_updates"]?.shape == [])
    #expect(tensors["num_updates"]?.scalars == [1234])
    #expect(tensors["mask"]?.scalars == [1, 0, 1])
    #expect(tensors["empty"]?.shape == [0, 3])
    // A transposed view of a 4×6 storage, gathered into row-major order.
    let transposed = try #require(tensors["views.transposed"])
    let rows = try #require(tensors["views.rows"])
    #expect(transposed.shape == [6, 4])
    #expect(transposed[0, 2] == rows[1, 0])
    #expect(tensors["views.expanded"]?.scalars == [1, -2, 3, 1, -2, 3, 1, -2, 3, 1, -2, 3])
    #expect(tensors["special.f16"]?.scalars[4] == 0x1p-24)
    #expect(tensors["special.f16"]?.scalars[1].sign == .minus)
}

@Test func checksumsCanBeSkipped() throws {
    let good = try #require(PickleFixtures.good)
    let contents = try TorchCheckpoint.read(PickleFixtures.url("good.ckpt"), verifyChecksums: false)
    expectTensors(contents.tensors, match: good.tensors, "good.ckpt")
    // A flipped bit in tensor data is only caught by the checksum.
    #expect(throws: CheckpointError.self) { try TorchCheckpoint.load(PickleFixtures.url("hostile/bad_crc.ckpt")) }
    #expect(
        try TorchCheckpoint.read(PickleFixtures.url("hostile/bad_crc.ckpt"), verifyChecksums: false)
            .tensors.count == good.tensors.count)
}

@Test func lightningCheckpointSkipsNumpyCallbacksAndNonTensors() throws {
    let lightning = try #require(PickleFixtures.lightning)
    let contents = try TorchCheckpoint.read(PickleFixtures.url("lightning.ckpt"))
    #expect(contents.skippedKeys == lightning.skipped)
    expectTensors(contents.tensors, match: lightning.tensors, "lightning.ckpt")
}

@Test func deepListChainsAndCyclesLoadWithoutRecursion() throws {
    let contents = try TorchCheckpoint.read(PickleFixtures.url("hostile/deep_lists.ckpt"))
    #expect(contents.tensors.isEmpty)
    #expect(contents.skippedKeys == ["chain", "cycle"])
}

@Test func repeatedKeysKeepTheLastValue() throws {
    let contents = try TorchCheckpoint.read(PickleFixtures.url("hostile/duplicate_keys.ckpt"))
    #expect(contents.skippedKeys == ["w"])
    #expect(contents.tensors.count == 1)
    #expect(contents.tensors["v"]?.scalars == [1, 2, 3, 4])
}

@Test(arguments: PickleFixtures.hostileCases)
func hostileCheckpointIsRefused(_ hostile: PickleFixtures.HostileCase) throws {
    let pwned = try #require(PickleFixtures.hostile?.pwned)
    let url = PickleFixtures.url(hostile.file)
    let error = try #require(#expect(throws: CheckpointError.self) { try TorchCheckpoint.load(url) })
    #expect(error.code.rawValue == hostile.code, "\(error)")
    #expect(error.file == url.path)
    #expect(error.description.hasPrefix(url.path + ": "))
    #expect(error.description.contains(hostile.message), "\(error)")
    #expect(error.tensorKey == hostile.key)
    #expect(!FileManager.default.fileExists(atPath: pwned), "a payload ran: \(pwned) exists")
}

@Test func refusedGlobalsAreNamedAndNothingRuns() throws {
    let hostile = try #require(PickleFixtures.hostile)
    let refused = hostile.cases.filter { $0.code == "refusedGlobal" }
    #expect(refused.count >= 8)
    for hostileCase in refused {
        #expect(throws: CheckpointError.self) { try TorchCheckpoint.load(PickleFixtures.url(hostileCase.file)) }
    }
    #expect(!FileManager.default.fileExists(atPath: hostile.pwned))
}

@Test func missingFileIsAnError() {
    let url = PickleFixtures.url("no-such-file.ckpt")
    let error = #expect(throws: CheckpointError.self) { try TorchCheckpoint.load(url) }
    #expect(error?.code == .unreadable)
    #expect(error?.description.contains("no-such-file.ckpt") == true)
    let folder = #expect(throws: CheckpointError.self) { try TorchCheckpoint.load(PickleFixtures.folder) }
    #expect(folder?.code == .unreadable)
}
