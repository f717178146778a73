import FarmModel
import Foundation
import Testing

@Test func everyMessageRoundTripsThroughFrames() throws {
    let parameters = TaskParameters(prompt: "a fox", width: 64, height: 64, steps: 4, seed: 7)
    let messages: [WireMessage] = [
        .hello(.init(workerID: "w1", host: "h", models: ["demo"], slots: 2)),
        .welcome(.init(heartbeatSeconds: 1, timeoutSeconds: 5)),
        .refused(.init(.nameInUse, "nope")),
        .heartbeat(.init(freeSlots: 3)),
        .heartbeat(.init(freeSlots: 0, state: "busy", loadedModel: "sd15")),
        .assign(.init(taskID: 9, attempt: 2, parameters: parameters)),
        .progress(.init(taskID: 9, attempt: 2, step: 1, total: 4)),
        .result(.init(taskID: 9, attempt: 2, width: 64, height: 64, seed: 7), png: Data([1, 2, 3])),
        .failed(.init(taskID: 9, attempt: 2, kind: .input, message: "bad")),
        .ack(taskID: 9, attempt: 2),
        .cancel(taskID: 9),
        .preview(.init(taskID: 9, attempt: 2, step: 5, total: 20), png: Data([0x89, 0x50])),
        .blob(sha256: SHA256.hex(of: Data([1, 2, 3])), data: Data([1, 2, 3])),
        .drain,
        .hello(.init(workerID: "w2", host: "h", models: [], slots: 1, maxPixels: 100, activeTasks: [3, 4], device: .current)),
        .progress(.init(taskID: 1, attempt: 1, step: 2, total: 3, itemsPerSecond: 1.5)),
    ]
    for message in messages {
        #expect(try WireMessage(frames: message.frames()) == message)
    }
}

@Test func malformedFramesAreErrors() {
    let cases: [[Data]] = [
        [],
        [Data("HELLO".utf8)],
        [Data("HELLO".utf8), Data("{not json".utf8)],
        [Data("NOPE".utf8), Data("{}".utf8)],
        [Data("RESULT".utf8), Data("{}".utf8)],
        [Data([0xFF, 0xFE]), Data("{}".utf8)],
    ]
    for frames in cases {
        #expect(throws: WireError.self) { try WireMessage(frames: frames) }
    }
    // A BLOB whose bytes do not match its address is refused.
    let forged = WireMessage.blob(sha256: SHA256.hex(of: Data([1])), data: Data([2])).frames()
    #expect(throws: WireError.self) { try WireMessage(frames: forged) }
    let big = [Data("HEARTBEAT".utf8), Data(repeating: 0x20, count: 2000)]
    #expect(throws: WireError.self) { try WireMessage(frames: big, maxBytes: 1000) }
}

/// The field `validate()` refuses after `change` is applied to a valid task, nil if it passes, "?" for another error.
private func field(_ change: (inout TaskParameters) -> Void) -> String? {
    var parameters = TaskParameters(prompt: "ok")
    change(&parameters)
    do {
        try parameters.validate()
        return nil
    } catch let failure as ValidationFailure { return failure.field } catch { return "?" }
}

@Test func validationNamesTheField() {
    #expect(field { _ in } == nil)
    #expect(field { $0.prompt = "" } == "prompt")
    #expect(field { $0.width = 513 } == "width")
    #expect(field { $0.height = 0 } == "height")
    #expect(field { $0.steps = 0 } == "steps")
    #expect(field { $0.cfgScale = .nan } == "cfg_scale")
    #expect(field { $0.prompt = String(repeating: "x", count: 5000) } == "prompt")
}

@Test func sha256MatchesKnownDigests() {
    #expect(SHA256.hex(of: Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(SHA256.hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(SHA256.hex(of: Data(repeating: 0x61, count: 1_000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
}

@Test func inputFieldsAreValidated() {
    let hash = SHA256.hex(of: Data([1]))
    #expect(
        field {
            $0.initImage = hash
            $0.mask = hash
            $0.strength = 0.5
        } == nil)
    #expect(field { $0.initImage = "XYZ" } == "init_image")
    #expect(field { $0.mask = hash } == "mask")
    #expect(
        field {
            $0.initImage = hash
            $0.strength = 1.5
        } == "strength")
    #expect(
        field {
            $0.initImage = hash
            $0.outpaint = [1, 2]
        } == "outpaint")
    #expect(field { $0.controlnets = [.init(model: "canny", image: "nope")] } == "controlnets[0].image")
    #expect(field { $0.controlnets = [.init(model: "canny", image: hash, scale: .infinity)] } == "controlnets[0].scale")
}
