import FarmModel
import Foundation
import Imaging
import StableDiffusion
import Tensors
import Testing

/// Tests/StableDiffusionTests/Fixtures: the LoRA and embedding files the engine's parity tests use.
let addOnFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("StableDiffusionTests/Fixtures")

/// A temporary LoRA folder holding the kohya LoCon fixture as `style.safetensors` (in a subfolder, as users sort
/// them) and an embeddings folder with the web-UI `.pt` and `emb_params` fixtures.
func addOnFolders() throws -> (loras: URL, embeddings: URL) {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("addons-\(UUID().uuidString)")
    let loras = root.appendingPathComponent("loras")
    let embeddings = root.appendingPathComponent("embeddings")
    try FileManager.default.createDirectory(at: loras.appendingPathComponent("styles"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: embeddings, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
        at: addOnFixtures.appendingPathComponent("loras/sd1-kohya-locon.safetensors"),
        to: loras.appendingPathComponent("styles/style.safetensors"))
    for name in ["tiny-emb.pt", "tiny-neg.safetensors"] {
        try FileManager.default.copyItem(at: addOnFixtures.appendingPathComponent("embeddings/\(name)"), to: embeddings.appendingPathComponent(name))
    }
    return (loras, embeddings)
}

/// The web UI's LoRA hash of a `.safetensors` file, computed here from its definition: SHA-256 of what follows the
/// header (kohya's addnet hash), 12 hex digits.
func addnetShortHash(_ url: URL) throws -> String {
    let data = try Data(contentsOf: url)
    let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    return String(SHA256.hex(of: data.subdata(in: (8 + length)..<data.count)).prefix(12))
}

/// The image the engine API draws for the LoRA test's prompt: weights patched with the LoRA at 0.8, the embeddings
/// read from the folder, the tag taken out of the text (nil LoRA weight: the unpatched model).
func engineRender(model: URL, loraWeight: Float?, folders: (loras: URL, embeddings: URL), prompt: String, negative: String) throws -> [UInt8] {
    var weights = try ModelWeights.load(model)
    if let loraWeight {
        let file = try LoRAFile.load(folders.loras.appendingPathComponent("styles/style.safetensors"))
        weights = try weights.applying([WeightedLoRA(file: file, weight: loraWeight)]).weights
    }
    let text = try ComposablePrompt.extractingLoRAs(prompt).text
    let pipeline = try Pipeline(weights: weights).usingEmbeddings(from: [folders.embeddings], for: [text, negative])
    let (conditional, unconditional) = try pipeline.encodePrompts(text, negative: negative)
    var settings = Pipeline.Settings()
    (settings.width, settings.height, settings.steps, settings.guidance, settings.sampler, settings.seed) = (24, 16, 3, 5, .euler, 3)
    return pipeline.decode(try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings))[0]
}

@Test func renderWithALoRATagAndEmbeddingsEqualsTheEngineAPI() throws {
    let model = try tinyModelWithFullVocabulary()
    let folders = try addOnFolders()
    defer {
        try? FileManager.default.removeItem(at: model)
        try? FileManager.default.removeItem(at: folders.loras.deletingLastPathComponent())
    }
    let prompt = "a <lora:style:0.8> photo of (tiny-emb:1.2), snow"
    let negative = "tiny-neg, blurry"
    let common = [
        "render", "--model", model.path, "--negative", negative, "--width", "24", "--height", "16", "--steps", "3",
        "--sampler", "euler", "--cfg", "5", "--seed", "3", "--embeddings-dir", folders.embeddings.path,
    ]
    let tagged = model.appendingPathComponent("tagged.png")
    let result = try runFarm(common + ["--prompt", prompt, "--lora-dir", folders.loras.path, "--out", tagged.path])
    #expect(result.status == 0, "\(result.stderr)")
    let image = try PNGImage(pngData: Data(contentsOf: tagged))
    let expected = try engineRender(model: model, loraWeight: 0.8, folders: folders, prompt: prompt, negative: negative)
    #expect(image.pixels == expected, "farm render differs from the engine API with the same LoRA and embeddings")
    let unpatched = try engineRender(model: model, loraWeight: nil, folders: folders, prompt: prompt, negative: negative)
    #expect(image.pixels != unpatched, "the LoRA changes nothing: the test would not see it")

    // The web UI's hashes: the LoRA's addnet hash, the embeddings' whole-file hashes, under the names prompts use.
    let parameters = try #require(image.textValue("parameters"))
    let loraHash = try addnetShortHash(folders.loras.appendingPathComponent("styles/style.safetensors"))
    let embeddingHashes = try ["tiny-emb.pt", "tiny-neg.safetensors"].map {
        String(SHA256.hex(of: try Data(contentsOf: folders.embeddings.appendingPathComponent($0))).prefix(12))
    }
    #expect(parameters.hasPrefix(prompt + "\nNegative prompt: \(negative)\n"))
    #expect(parameters.contains(", Lora hashes: \"style: \(loraHash)\""), "\(parameters)")
    #expect(parameters.contains(", TI hashes: \"tiny-emb: \(embeddingHashes[0]), tiny-neg: \(embeddingHashes[1])\""), "\(parameters)")

    // --lora PATH:WEIGHT is the same LoRA without a tag: the same pixels, and the tag written after the prompt.
    let flagged = model.appendingPathComponent("flagged.png")
    let path = folders.loras.appendingPathComponent("styles/style.safetensors").path
    let byPath = try runFarm(common + ["--prompt", "a photo of (tiny-emb:1.2), snow", "--lora", path + ":0.8", "--out", flagged.path])
    #expect(byPath.status == 0, "\(byPath.stderr)")
    let flaggedImage = try PNGImage(pngData: Data(contentsOf: flagged))
    #expect(flaggedImage.pixels == image.pixels)
    #expect(flaggedImage.textValue("parameters")?.hasPrefix("a photo of (tiny-emb:1.2), snow <lora:style:0.8>\n") == true)

    // An unknown name is one clear line listing what the folder holds; so is a tag without --lora-dir.
    let unknown = try runFarm(common + ["--prompt", "a <lora:nope:1> cat", "--lora-dir", folders.loras.path, "--out", tagged.path])
    #expect(unknown.status != 0)
    #expect(unknown.stderr.contains("no LoRA named \"nope\"") && unknown.stderr.contains("known: style"), "\(unknown.stderr)")
    let noFolder = try runFarm(common + ["--prompt", "a <lora:style:1> cat", "--out", tagged.path])
    #expect(noFolder.status != 0 && noFolder.stderr.contains("--lora-dir"), "\(noFolder.stderr)")
}
