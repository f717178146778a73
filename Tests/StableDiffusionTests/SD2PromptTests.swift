import Foundation
import StableDiffusion
import Tensors
import Testing

/// One prompt of Fixtures/sd2_prompts.json (Tools/make_sd2_prompt_fixtures.py): the ids transformers'
/// CLIPTokenizer gives diffusers with SD 2.x's "!" pad token, and the text encoder's output for them.
struct SD2PromptCase: Decodable, Sendable, CustomTestStringConvertible {
    let prompt: String
    let ids: [Int]
    let hidden: [Float]
    let shape: [Int]
    var testDescription: String { prompt.debugDescription }
}

/// Fixtures/sd2_prompts.json: the prompts and diffusers' encodings of them.
func sd2PromptCases() throws -> [SD2PromptCase] { try fixtureCases("sd2_prompts.json") }

/// The OpenCLIP-shaped encoder with CLIP's full vocabulary that the fixture script stored (fp16).
private func sd2TextEncoder() throws -> TextEncoder {
    let folder = modelFixtures.appendingPathComponent("tiny-sd2-text")
    let config = try JSONDecoder().decode(TextEncoderConfig.self, from: Data(contentsOf: folder.appendingPathComponent("config.json")))
    var weights: [String: Tensor] = [:]
    for (name, tensor) in try SafeTensorsFile(url: folder.appendingPathComponent("model.safetensors")).allTensors() {
        if let mapped = CheckpointKeys.clipName(name) { weights[mapped] = tensor }
    }
    return try TextEncoder(config: config, weights: weights)
}

@Test(arguments: try sd2PromptCases())
func sd2PromptsWithExclamationMarksMatchDiffusers(_ fixture: SD2PromptCase) throws {
    // The chunker a Pipeline makes for an SD 2.x model ("!" padding, defaults otherwise).
    let chunker = PromptChunker(tokenizer: try CLIPTokenizer.shared(), padding: .exclamationMark)
    let chunks = try chunker.chunks(for: fixture.prompt)
    #expect(chunks.tokens == [fixture.ids], "token ids differ from diffusers'")
    let encoder = try sd2TextEncoder()
    let hidden = encoder.encode(chunks: chunks.tokens, weights: chunks.weights)
    #expect(hidden.shape == fixture.shape)
    let worst = zip(hidden.scalars, fixture.hidden).map { abs($0 - $1) }.max() ?? .infinity
    #expect(worst < 1e-4, "conditioning differs from diffusers' by \(worst)")
}

@Test func sd2PromptFixturesCoverTheExclamationCases() throws {
    let cases = try sd2PromptCases()
    let prompts = cases.map(\.prompt)
    #expect(prompts.count == 12)
    #expect(prompts.contains { $0.hasPrefix("!") } && prompts.contains { $0.hasSuffix("!!!") } && prompts.contains("!"))
    // The prompt of exactly 75 tokens ends in "!": no pad, no truncation, the end token last.
    let full = cases.first { $0.prompt.count > 200 }
    #expect(full?.ids.last == CLIPTokenizer.endOfTextID && full?.ids[75] == 0 && full?.prompt.hasSuffix("!") == true)
}

@Test func webUIChunkingKeepsExclamationMarksAsText() throws {
    // The web UI tokenizes SD 2.x prompts with open_clip: "!!!" is one ordinary token there.
    let tokenizer = try CLIPTokenizer.shared()
    let webUI = PromptChunker(tokenizer: tokenizer, padding: .exclamationMark, splitsExclamationMarks: false)
    let diffusers = PromptChunker(tokenizer: tokenizer, padding: .exclamationMark)
    let merged = try webUI.chunks(for: "dawn!!!").tokens[0]
    let split = try diffusers.chunks(for: "dawn!!!").tokens[0]
    #expect(Array(merged[..<4]) == [CLIPTokenizer.startOfTextID] + tokenizer.encode("dawn!!!") + [CLIPTokenizer.endOfTextID])
    #expect(Array(split[..<6]) == [CLIPTokenizer.startOfTextID] + tokenizer.encode("dawn") + [0, 0, 0, CLIPTokenizer.endOfTextID])
}
