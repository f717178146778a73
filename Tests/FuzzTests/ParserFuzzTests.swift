import FarmModel
import Foundation
import Imaging
import JobSpec
import Testing

@Test func pngDecoderSurvivesMutatedFiles() throws {
    let files = corpusFiles("png")
    #expect(files.count >= 7)
    var outcomes = Outcomes<ImagingError>()
    let runs = fuzz("png", corpus: files.map(\.bytes)) { bytes in
        outcomes.record("PNG decoder") {
            let image = try PNGImage(pngData: Data(bytes))
            #expect(image.pixels.count == image.width * image.height * image.format.channels)
        }
    }
    #expect(outcomes.accepted >= files.count && outcomes.refused > 0, "\(runs) inputs: \(outcomes)")
}

@Test func jobSpecParserSurvivesMutatedSpecs() throws {
    let files = corpusFiles("spec")
    #expect(files.count >= 6)
    var outcomes = Outcomes<JobSpecError>()
    // Each input is tried as every format, so one corpus exercises all five parsers.
    let extensions = ["yaml", "json", "jsonl", "csv", "txt"]
    var turn = 0
    let runs = fuzz("spec", corpus: files.map(\.bytes)) { bytes in
        turn += 1
        outcomes.record("job spec parser") {
            let spec = try JobSpec.parse(
                String(decoding: bytes, as: UTF8.self), file: "fuzz.\(extensions[turn % extensions.count])",
                overrides: ["model": "demo"])
            #expect(spec.tasks.count <= JobSpec.maxTasks)
        }
    }
    #expect(outcomes.accepted > 0 && outcomes.refused > 0, "\(runs) inputs: \(outcomes)")
}

@Test func wireDecoderSurvivesMutatedFrames() throws {
    let parameters = TaskParameters(prompt: "a fox", model: "demo", width: 64, height: 64, steps: 4, seed: 7)
    let messages: [WireMessage] = [
        .hello(.init(workerID: "w2", host: "h", models: ["demo"], slots: 1, maxPixels: 100, activeTasks: [3, 4], device: .current)),
        .heartbeat(.init(freeSlots: 0, state: "busy", loadedModel: "sd15")),
        .assign(.init(taskID: 9, attempt: 2, parameters: parameters)),
        .progress(.init(taskID: 1, attempt: 1, step: 2, total: 3, itemsPerSecond: 1.5)),
        .result(.init(taskID: 9, attempt: 2, width: 64, height: 64, seed: 7), png: Data([0x89, 0x50, 0x4E, 0x47])),
        .failed(.init(taskID: 9, attempt: 2, kind: .input, message: "bad")),
        .preview(.init(taskID: 9, attempt: 2, step: 5, total: 20), png: Data([0x89, 0x50])),
        .blob(sha256: SHA256.hex(of: Data([1, 2, 3])), data: Data([1, 2, 3])),
        .ack(taskID: 9, attempt: 2), .cancel(taskID: 9), .drain,
    ]
    // A message's frames travel as one corpus entry: a count byte, then per frame a length byte and its bytes
    // (frames are short here), so mutations also change how many frames there are and where they split.
    func pack(_ frames: [Data]) -> [UInt8] {
        [UInt8(frames.count)] + frames.flatMap { [UInt8(min($0.count, 255))] + Array($0.prefix(255)) }
    }
    func unpack(_ bytes: [UInt8]) -> [Data] {
        guard let count = bytes.first else { return [] }
        var frames: [Data] = []
        var position = 1
        for _ in 0..<Int(count) where position < bytes.count {
            let length = Int(bytes[position])
            let end = min(bytes.count, position + 1 + length)
            frames.append(Data(bytes[(position + 1)..<end]))
            position = end
        }
        return frames
    }
    var outcomes = Outcomes<WireError>()
    let runs = fuzz("wire", corpus: messages.map { pack($0.frames()) }) { bytes in
        outcomes.record("wire decoder") { _ = try WireMessage(frames: unpack(bytes), maxBytes: 1 << 20) }
    }
    #expect(outcomes.accepted >= messages.count && outcomes.refused > 0, "\(runs) inputs: \(outcomes)")
}

@Test(arguments: [("[", "]"), ("{a: ", "}"), ("- ", "")])
func deeplyNestedSpecsAreRefusedNotCrashed(_ open: String, _ close: String) {
    // A spec body over HTTP nested 100 000 deep must be refused with a spec error, not recursed
    // into until the coordinator's stack runs out (libyaml stops at its nesting limit; this keeps it so).
    let depth = 100_000
    let text =
        open == "- "
        ? (0..<depth).map { String(repeating: " ", count: $0 % 200) + "- " }.joined(separator: "\n")
        : String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
    #expect(throws: JobSpecError.self) { try JobSpec.parse("name: x\nmodel: demo\nitems: " + text, file: "deep.yaml") }
}
