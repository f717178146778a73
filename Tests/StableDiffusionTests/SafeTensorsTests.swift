import Foundation
import StableDiffusion
import Tensors
import Testing

/// Writes a safetensors file from a header object and a data section.
func writeSafeTensors(header: Any, data: [UInt8], rawHeader: [UInt8]? = nil, declaredLength: UInt64? = nil) throws -> URL {
    let json = try rawHeader ?? [UInt8](JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
    var bytes = withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { [UInt8]($0) }
    bytes += json + data
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString).safetensors")
    try Data(bytes).write(to: url)
    return url
}

func floatBytes(_ values: [Float]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { [UInt8]($0) } } }

@Test func readsF32F16BF16AndMetadata() throws {
    let f16: [UInt8] = [0x00, 0x3C, 0x00, 0xC0]  // 1.0, -2.0
    let bf16: [UInt8] = [0x80, 0x3F, 0x40, 0x40]  // 1.0, 3.0
    let url = try writeSafeTensors(
        header: [
            "__metadata__": ["format": "pt"],
            "a": ["dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]],
            "b": ["dtype": "F16", "shape": [2], "data_offsets": [16, 20]],
            "c": ["dtype": "BF16", "shape": [2], "data_offsets": [20, 24]],
            "empty": ["dtype": "F32", "shape": [0], "data_offsets": [24, 24]],
        ], data: floatBytes([1, 2, 3, 4]) + f16 + bf16)
    defer { try? FileManager.default.removeItem(at: url) }
    let file = try SafeTensorsFile(url: url)
    #expect(file.metadata == ["format": "pt"])
    #expect(file.names == ["a", "b", "c", "empty"])
    #expect(try file.tensor("a").scalars == [1, 2, 3, 4])
    #expect(try file.tensor("a").shape == [2, 2])
    #expect(try file.tensor("b").scalars == [1, -2])
    #expect(try file.tensor("c").scalars == [1, 3])
    #expect(try file.tensor("empty").count == 0)
    #expect(throws: WeightsError.self) { try file.tensor("missing") }
}

/// Each malformed file is a `WeightsError` whose message names the problem (and the tensor), when opened or,
/// for a dtype the engine cannot read, when that tensor is read.
@Test(
    arguments: [
        ("truncated before the header length", [String: Any](), [UInt8](), Optional<[UInt8]>.some([1, 2, 3]), UInt64?.none, "8-byte header length"),
        (
            "absurd header length", ["a": ["dtype": "F32", "shape": [1], "data_offsets": [0, 4]]], floatBytes([1]), nil, UInt64(1) << 60,
            "header length"
        ),
        ("header past the end", ["a": ["dtype": "F32", "shape": [1], "data_offsets": [0, 4]]], floatBytes([1]), nil, UInt64(5000), "header length"),
        ("header not JSON", [:], [], Array("{not json".utf8), nil, "not a JSON object"),
        ("unknown dtype", ["w": ["dtype": "I4", "shape": [1], "data_offsets": [0, 4]]], floatBytes([1]), nil, nil, "\"w\": dtype I4"),
        ("offsets out of range", ["w": ["dtype": "F32", "shape": [4], "data_offsets": [0, 16]]], floatBytes([1]), nil, nil, "\"w\": data_offsets"),
        ("offsets reversed", ["w": ["dtype": "F32", "shape": [1], "data_offsets": [4, 0]]], floatBytes([1, 2]), nil, nil, "\"w\": data_offsets"),
        (
            "size does not match shape", ["w": ["dtype": "F32", "shape": [3], "data_offsets": [0, 8]]], floatBytes([1, 2]), nil, nil,
            "\"w\": 8 bytes do not hold"
        ),
        ("negative dimension", ["w": ["dtype": "F32", "shape": [-1], "data_offsets": [0, 4]]], floatBytes([1]), nil, nil, "\"w\": shape"),
        (
            "overflowing shape", ["w": ["dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 4]]], floatBytes([1]), nil, nil, "overflows"
        ),
        (
            "overlapping tensors",
            [
                "a": ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]],
                "b": ["dtype": "F32", "shape": [2], "data_offsets": [4, 12]],
            ], floatBytes([1, 2, 3]), nil, nil, "overlap"
        ),
        ("entry not an object", ["w": 5], [], nil, nil, "\"w\": entry is not an object"),
    ] as [(String, [String: Any], [UInt8], [UInt8]?, UInt64?, String)])
func corruptHeadersAreClearErrors(
    _ name: String, _ header: [String: Any], _ data: [UInt8], _ raw: [UInt8]?,
    _ declared: UInt64?, _ expected: String
) throws {
    let url: URL
    if name.hasPrefix("truncated") {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString).safetensors")
        try Data(raw!).write(to: url)
    } else {
        url = try writeSafeTensors(header: header, data: data, rawHeader: raw, declaredLength: declared)
    }
    defer { try? FileManager.default.removeItem(at: url) }
    do {
        // An unknown dtype opens (most such tensors are never used) and fails when its tensor is read.
        let file = try SafeTensorsFile(url: url)
        for tensor in file.names { _ = try file.tensor(tensor) }
        Issue.record("\(name): accepted")
    } catch let error as WeightsError {
        #expect(error.path == url.path)
        #expect(error.message.contains(expected), "\(name): \(error.message)")
    }
}

/// Flipping or cutting bytes anywhere in a real file gives a result or an error, never a crash.
@Test func mutatedFilesNeverCrash() throws {
    let original = try [UInt8](Data(contentsOf: modelFixtures.appendingPathComponent("tiny-sd1.safetensors")))
    let headerEnd = 8 + Int(original[0]) + Int(original[1]) << 8 + Int(original[2]) << 16
    var accepted = 0
    var refused = 0
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for round in 0..<300 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        var bytes = original
        let position = Int(state >> 33) % min(headerEnd + 64, bytes.count)
        if round % 3 == 0 {
            bytes = Array(bytes.prefix(position))
        } else {
            bytes[position] ^= UInt8(truncatingIfNeeded: state >> 17) | 1
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(round).safetensors")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            let file = try SafeTensorsFile(url: url)
            _ = try file.allTensors()
            accepted += 1
        } catch is WeightsError {
            refused += 1
        }
    }
    #expect(accepted + refused == 300)
    #expect(refused > 100, "most damaged headers must be refused")
}
