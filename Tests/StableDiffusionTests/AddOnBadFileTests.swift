import Foundation
import StableDiffusion
import Tensors
import Testing

/// A file that must be refused, what it is loaded against, and the error it must give.
struct BadAddOnCase: Sendable, CustomTestStringConvertible {
    let name: String
    let code: AddOnFileError.Code
    var testDescription: String { name }
}

/// Random values of `shape`.
private func noise(_ shape: [Int]) -> Tensor {
    var generator = SystemRandomNumberGenerator()
    return Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &generator) })
}

private let attention = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"

/// Writes the bad file of `name` into `folder` and loads it the way a render would; returns what was thrown.
private func loadBad(_ name: String, in folder: URL) throws {
    let sd1 = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1"))
    let url = folder.appendingPathComponent(name + ".safetensors")
    func write(_ tensors: [String: Tensor]) throws { try SafeTensorsFile.write(tensors, to: url) }
    func lora() throws { _ = try sd1.applying([WeightedLoRA(file: try LoRAFile.load(url), weight: 1)]) }
    func embedding(widths: [Int]) throws { _ = try TextualInversion.load(url).rows(forEncoderWidths: widths) }
    switch name {
    case "sdxl-lora-on-sd1":
        try FileManager.default.copyItem(at: loraFixtures.appendingPathComponent("sdxl-kohya-sgm.safetensors"), to: url)
        try lora()
    case "wrong-shape":
        try write([attention + ".lora_down.weight": noise([4, 99]), attention + ".lora_up.weight": noise([8, 4])])
        try lora()
    case "unknown-layer":
        try write([
            attention + ".lora_down.weight": noise([4, 8]), attention + ".lora_up.weight": noise([8, 4]),
            "lora_unet_no_such_layer.lora_down.weight": noise([4, 8]), "lora_unet_no_such_layer.lora_up.weight": noise([8, 4]),
        ])
        try lora()
    case "not-a-lora":
        try write(["model.diffusion_model.conv_in.weight": noise([4, 4])])
        try lora()
    case "truncated":
        let data = try Data(contentsOf: loraFixtures.appendingPathComponent("sd1-peft.safetensors"))
        try data.prefix(200).write(to: url)
        try lora()
    case "missing-up":
        try write([attention + ".lora_down.weight": noise([4, 8])])
        try lora()
    case "tucker":
        try write([
            attention + ".lora_down.weight": noise([4, 8]), attention + ".lora_up.weight": noise([8, 4]),
            attention + ".lora_mid.weight": noise([4, 4]),
        ])
        try lora()
    case "empty":
        try write([:])
        try lora()
    case "embedding-too-wide":
        try write(["emb_params": noise([2, 20])])
        try embedding(widths: [16])
    case "sdxl-embedding-on-sd1":
        try FileManager.default.copyItem(at: embeddingFixtures.appendingPathComponent("tiny-xl-emb.safetensors"), to: url)
        try embedding(widths: [16])
    case "sd1-embedding-on-sdxl":
        try write(["emb_params": noise([2, 32])])
        try embedding(widths: [32, 48])
    case "embedding-junk":
        try write(["a": noise([2, 16]), "b": noise([2, 16])])
        try embedding(widths: [16])
    case "unknown-lora-name":
        _ = try AddOnFiles.find("no-such-lora", in: [loraFixtures], what: "LoRA")
    default:
        Issue.record("no bad file \(name)")
    }
}

let badAddOnTable: [BadAddOnCase] = [
    BadAddOnCase(name: "sdxl-lora-on-sd1", code: .wrongArchitecture),
    BadAddOnCase(name: "wrong-shape", code: .wrongShape),
    BadAddOnCase(name: "unknown-layer", code: .unknownKeys),
    BadAddOnCase(name: "not-a-lora", code: .unknownKeys),
    BadAddOnCase(name: "truncated", code: .unreadable),
    BadAddOnCase(name: "missing-up", code: .missingPart),
    BadAddOnCase(name: "tucker", code: .unsupported),
    BadAddOnCase(name: "empty", code: .empty),
    BadAddOnCase(name: "embedding-too-wide", code: .wrongArchitecture),
    BadAddOnCase(name: "sdxl-embedding-on-sd1", code: .wrongArchitecture),
    BadAddOnCase(name: "sd1-embedding-on-sdxl", code: .wrongArchitecture),
    BadAddOnCase(name: "embedding-junk", code: .unknownKeys),
    BadAddOnCase(name: "unknown-lora-name", code: .unknownName),
]

/// Every bad file is one `AddOnFileError` with its code, naming the file (or the name looked up), never a crash.
@Test(arguments: badAddOnTable)
func badAddOnFileIsOneClearError(_ fixture: BadAddOnCase) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("addon-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let error = #expect(throws: AddOnFileError.self) { try loadBad(fixture.name, in: folder) }
    #expect(error?.code == fixture.code, "\(error.map(String.init(describing:)) ?? "no error")")
    let named = fixture.name == "unknown-lora-name" ? "no-such-lora" : fixture.name
    #expect(error?.description.contains(named) == true)
    #expect((error?.message.count ?? 0) > 20)
}
