import Foundation
import StableDiffusion
import Testing

/// Reference ids from transformers' slow CLIPTokenizer without ftfy (written by Tools/make_tokenizer_fixtures.py).
struct TokenizerFixtures: Decodable {
    struct Case: Decodable {
        let prompt: String
        let ids: [Int]
        let padded: [Int]
        let paddedExclamation: [Int]?
    }
    struct LengthCase: Decodable {
        let prompt: String
        let maxLength: Int
        let padding: String
        let ids: [Int]
    }
    let cases: [Case]
    let lengths: [LengthCase]

    /// Fixtures/tokenizer.json, read once; a missing or broken file stops the run with its name.
    static let loaded: TokenizerFixtures = try! decodeFixture("tokenizer.json")
}

/// The vocabulary in the source tree, independent of the resource bundle.
let sourceVocabularyURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../Sources/StableDiffusion/Resources/demo/tokenizer/merges.txt").standardizedFileURL

func padding(named name: String) -> PaddingStyle {
    name == "exclamationMark" ? .exclamationMark : .endOfText
}

/// The first fixture whose ids differ, described with both id lists, or nil when all match.
func firstMismatch<T>(_ items: [T], expected: (T) -> [Int]?, actual: (T) -> [Int], prompt: (T) -> String) -> String? {
    for item in items {
        guard let want = expected(item) else { continue }
        let got = actual(item)
        if got != want { return "prompt \(prompt(item).debugDescription): expected \(want), got \(got)" }
    }
    return nil
}

@Test func fixturesCoverEnoughPrompts() {
    let fixtures = TokenizerFixtures.loaded
    #expect(fixtures.cases.count >= 250)
    #expect(fixtures.cases.filter { $0.paddedExclamation != nil }.count >= 50)
    #expect(fixtures.cases.contains { $0.ids.count > 75 })
}

/// Expects the shared tokenizer to give every fixture prompt the ids `expected` lists for it (cases without
/// them are skipped), as `tokenize` computes them.
func expectFixturePromptsTokenize(
    expected: (TokenizerFixtures.Case) -> [Int]?, tokenize: (CLIPTokenizer, String) -> [Int],
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let tokenizer = try CLIPTokenizer.shared()
    let mismatch = firstMismatch(
        TokenizerFixtures.loaded.cases, expected: expected, actual: { tokenize(tokenizer, $0.prompt) }, prompt: { $0.prompt })
    #expect(mismatch == nil, "\(mismatch ?? "")", sourceLocation: sourceLocation)
}

@Test func encodeMatchesTransformersForEveryFixturePrompt() throws {
    try expectFixturePromptsTokenize(expected: { $0.ids }, tokenize: { $0.encode($1) })
}

@Test func endOfTextPaddingMatchesTransformers() throws {
    try expectFixturePromptsTokenize(expected: { $0.padded }, tokenize: { $0.tokenize($1, padding: .endOfText) })
}

@Test func exclamationPaddingMatchesTransformers() throws {
    try expectFixturePromptsTokenize(expected: { $0.paddedExclamation }, tokenize: { $0.tokenize($1, padding: .exclamationMark) })
}

@Test func otherMaxLengthsMatchTransformers() throws {
    let tokenizer = try CLIPTokenizer.shared()
    for item in TokenizerFixtures.loaded.lengths {
        let ids = tokenizer.tokenize(item.prompt, maxLength: item.maxLength, padding: padding(named: item.padding))
        #expect(ids == item.ids, "\(item.prompt.debugDescription) maxLength \(item.maxLength) \(item.padding)")
    }
}

@Test func padStylesFillAfterTheEndToken() throws {
    let tokenizer = try CLIPTokenizer.shared()
    let sd1 = tokenizer.tokenize("a photo of a cat", padding: .endOfText)
    #expect(sd1.count == 77)
    #expect(Array(sd1[..<7]) == [49406, 320, 1125, 539, 320, 2368, 49407])
    #expect(sd1[7...].allSatisfy { $0 == 49407 })
    let sd2 = tokenizer.tokenize("a photo of a cat", padding: .exclamationMark)
    #expect(Array(sd2[..<7]) == Array(sd1[..<7]))
    #expect(sd2[7...].allSatisfy { $0 == 0 })
    // transformers treats the pad token "!" as special, so it is split out of the text too.
    #expect(
        Array(tokenizer.tokenize("hello!!! world!", maxLength: 10, padding: .exclamationMark))
            == [49406, 3306, 0, 0, 0, 1002, 0, 49407, 0, 0])
    #expect(
        Array(tokenizer.tokenize("hello!!! world!", maxLength: 10, padding: .endOfText))
            == [49406, 3306, 995, 1002, 256, 49407, 49407, 49407, 49407, 49407])
    #expect(PaddingStyle.endOfText.padTokenID == 49407)
    #expect(PaddingStyle.exclamationMark.padTokenID == 0)
}

@Test func truncationKeepsTheEndToken() throws {
    let tokenizer = try CLIPTokenizer.shared()
    let long = Array(repeating: "cat", count: 100).joined(separator: " ")
    #expect(tokenizer.encode(long).count == 100)
    let ids = tokenizer.tokenize(long, padding: .endOfText)
    #expect(ids.count == 77)
    #expect(ids.first == 49406)
    #expect(ids[1...75].allSatisfy { $0 == 2368 })
    #expect(ids.last == 49407)
    #expect(tokenizer.tokenize(long, maxLength: 2, padding: .exclamationMark) == [49406, 49407])
    #expect(tokenizer.tokenize("", maxLength: 4, padding: .exclamationMark) == [49406, 49407, 0, 0])
}

@Test func padStyleComesFromTokenizerConfig() throws {
    let sd2 = #"{"pad_token": "!", "bos_token": "<|startoftext|>", "model_max_length": 77}"#
    #expect(try PaddingStyle(tokenizerConfig: Data(sd2.utf8)) == .exclamationMark)
    let addedToken = #"{"pad_token": {"__type": "AddedToken", "content": "<|endoftext|>", "lstrip": false}}"#
    #expect(try PaddingStyle(tokenizerConfig: Data(addedToken.utf8)) == .endOfText)
    #expect(try PaddingStyle(tokenizerConfig: Data("{}".utf8)) == .endOfText)
    #expect(throws: CLIPTokenizerError.unsupportedPadToken("<pad>")) {
        try PaddingStyle(tokenizerConfig: Data(#"{"pad_token": "<pad>"}"#.utf8))
    }
    #expect(throws: CLIPTokenizerError.self) { try PaddingStyle(tokenizerConfig: Data("[1]".utf8)) }
    #expect(throws: CLIPTokenizerError.self) { try PaddingStyle(tokenizerConfig: Data(#"{"pad_token": null}"#.utf8)) }
    #expect(throws: CLIPTokenizerError.self) { try PaddingStyle(tokenizerConfig: Data("not json".utf8)) }
}

@Test func specialTokensInTheTextKeepTheirIDs() throws {
    let tokenizer = try CLIPTokenizer.shared()
    #expect(tokenizer.encode("a<|endoftext|>b") == [320, 49407, 321])
    #expect(tokenizer.encode("<|startoftext|>") == [49406])
    // Not exact: the regex still keeps it in one piece, but BPE spells it out.
    #expect(tokenizer.encode("<|ſtartoftext|>") == [27, 91, 129, 123, 2002, 6659, 18169, 91, 285])
}

@Test func decodeInvertsEncode() throws {
    let tokenizer = try CLIPTokenizer.shared()
    #expect(tokenizer.decode(tokenizer.tokenize("A Photo of a Cat, 3.14!", padding: .endOfText)) == "a photo of a cat , 3 . 1 4 !")
    #expect(tokenizer.decode(tokenizer.encode("café 東京 🙂")) == "café 東 京 🙂")
}

@Test func explicitVocabularyURLLoadsTheSameTables() throws {
    let tokenizer = try CLIPTokenizer(vocabularyURL: sourceVocabularyURL)
    #expect(
        tokenizer.encode("a photograph of an astronaut riding a horse")
            == (try CLIPTokenizer.shared()).encode("a photograph of an astronaut riding a horse"))
    #expect(CLIPTokenizer.vocabularySize == 49408)
}

@Test func missingVocabularyNamesThePathTried() {
    let missing = URL(fileURLWithPath: "/nonexistent/folder/bpe_simple_vocab_16e6.txt.gz")
    #expect(throws: CLIPTokenizerError.vocabularyNotFound(tried: [missing.path])) {
        try CLIPTokenizer(vocabularyURL: missing)
    }
    let message = CLIPTokenizerError.vocabularyNotFound(tried: [missing.path]).description
    #expect(message.contains(missing.path))
    #expect(message.contains("FARM_CLIP_VOCAB"))
}

@Test func corruptVocabularyIsReported() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("clip-vocab-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }

    let garbage = folder.appendingPathComponent("garbage.txt")
    try Data("not merges at all, just text".utf8).write(to: garbage)
    #expect(throws: CLIPTokenizerError.corruptVocabulary(path: garbage.path, reason: "it has 0 merges, CLIP needs 48894")) {
        try CLIPTokenizer(vocabularyURL: garbage)
    }

    let truncated = folder.appendingPathComponent("truncated.txt")
    try Data(contentsOf: sourceVocabularyURL).prefix(100_000).write(to: truncated)
    #expect(throws: CLIPTokenizerError.self) { try CLIPTokenizer(vocabularyURL: truncated) }

    var flipped = try Data(contentsOf: sourceVocabularyURL)
    flipped[flipped.count / 2] ^= 0x40
    let damaged = folder.appendingPathComponent("damaged.txt")
    try flipped.write(to: damaged)
    #expect(throws: CLIPTokenizerError.self) { try CLIPTokenizer(vocabularyURL: damaged) }
}

@Test func seventySevenTokenPromptTokenizesWellUnderAMillisecond() throws {
    let tokenizer = try CLIPTokenizer.shared()
    // Fresh words every round, so that the BPE cache does not hide the merging cost.
    var generator = SystemRandomNumberGenerator()
    var timings: [Double] = []
    for _ in 0..<30 {
        let words = (0..<40).map { _ in
            String((0..<Int.random(in: 3...9, using: &generator)).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement(using: &generator)! })
        }
        let prompt = words.joined(separator: ", ")
        let start = DispatchTime.now().uptimeNanoseconds
        let ids = tokenizer.tokenize(prompt, padding: .endOfText)
        timings.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        #expect(ids.count == 77)
    }
    let median = timings.sorted()[timings.count / 2]
    #expect(median < 1.0, "median \(median) ms")
}
