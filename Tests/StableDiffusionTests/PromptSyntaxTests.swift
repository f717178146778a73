import Foundation
import StableDiffusion
import Testing

/// A1111's parse_prompt_attention and tokenize_line results (written by Tools/make_tokenizer_fixtures.py).
struct PromptSyntaxFixtures: Decodable {
    struct Attention: Decodable {
        let prompt: String
        let fragments: [Fragment]?
        let error: String?
    }
    /// A `[text, weight]` pair as the fixture stores it.
    struct Fragment: Decodable {
        let text: String
        let weight: Double
        init(from decoder: Decoder) throws {
            var pair = try decoder.unkeyedContainer()
            text = try pair.decode(String.self)
            weight = try pair.decode(Double.self)
        }
    }
    struct Chunks: Decodable {
        let prompt: String
        let backtrack: Int
        let padding: String
        let tokenCount: Int
        let tokens: [[Int]]
        let weights: [[Double]]
    }
    let attention: [Attention]
    let chunks: [Chunks]

    /// Fixtures/prompt_syntax.json, read once; a missing or broken file stops the run with its name.
    static let loaded: PromptSyntaxFixtures = try! decodeFixture("prompt_syntax.json")
}

@Test func attentionParsingMatchesA1111Fixtures() throws {
    let cases = PromptSyntaxFixtures.loaded.attention
    #expect(cases.count >= 80)
    for item in cases {
        if let weight = item.error {
            #expect(throws: PromptSyntaxError.invalidWeight(weight), "\(item.prompt.debugDescription)") {
                try PromptParser.parse(item.prompt)
            }
        } else {
            let expected = (item.fragments ?? []).map { PromptFragment(text: $0.text, weight: $0.weight) }
            #expect(try PromptParser.parse(item.prompt) == expected, "\(item.prompt.debugDescription)")
        }
    }
}

@Test func chunkingMatchesA1111Fixtures() throws {
    let tokenizer = try CLIPTokenizer.shared()
    let cases = PromptSyntaxFixtures.loaded.chunks
    #expect(cases.count >= 30)
    for item in cases {
        // The fixtures are the web UI's chunks, whose SD 2.x tokenizer (open_clip) keeps "!" as text.
        let chunker = PromptChunker(
            tokenizer: tokenizer, commaPaddingBacktrack: item.backtrack, padding: padding(named: item.padding),
            splitsExclamationMarks: false)
        let result = try chunker.chunks(for: item.prompt)
        let label = "\(item.prompt.prefix(60).debugDescription) backtrack \(item.backtrack) \(item.padding)"
        #expect(result.tokens == item.tokens, "\(label)")
        #expect(result.weights == item.weights.map { $0.map(Float.init) }, "\(label)")
        #expect(result.tokenCount == item.tokenCount, "\(label)")
    }
}

/// (prompt, expected fragments as (text, weight)) in A1111's semantics.
private let attentionCases: [(String, [(String, Double)])] = [
    ("plain text", [("plain text", 1)]),
    ("(word:1.2)", [("word", 1.2)]),
    ("(word)", [("word", 1.1)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("((word))", [("word", 1.1 * 1.1)]),
    ("[[word]]", [("word", (1 / 1.1) * (1 / 1.1))]),
    ("((word:1.5))", [("word", 1.5 * 1.1)]),
    ("[(word:1.5)]", [("word", 1.5 * (1 / 1.1))]),
    ("a (b [c] d) e", [("a ", 1), ("b ", 1.1), ("c", 1 / 1.1 * 1.1), (" d", 1.1), (" e", 1)]),
    ("\\(literal\\) \\[x\\] \\\\", [("(literal) [x] \\", 1)]),
    ("(unclosed", [("unclosed", 1.1)]),
    ("[unclosed (both", [("unclosed ", 1 / 1.1), ("both", 1.1 * (1 / 1.1))]),
    ("stray) and]", [("stray) and]", 1)]),
    ("a:1.2) b", [("a:1.2) b", 1)]),
    ("(a)(b)", [("ab", 1.1)]),
    ("", [("", 1)]),
    ("a BREAK b", [("a", 1), ("BREAK", -1), ("b", 1)]),
    ("a break b", [("a break b", 1)]),
    ("aBREAK b", [("aBREAK b", 1)]),
]

@Test func attentionWeightsEscapesNestingAndBreak() throws {
    for (prompt, expected) in attentionCases {
        let fragments = try PromptParser.parse(prompt)
        #expect(fragments == expected.map { PromptFragment(text: $0.0, weight: $0.1) }, "\(prompt.debugDescription)")
    }
    #expect(try PromptParser.parse("a BREAK b")[1].isBreak)
    // Inside brackets the marker's weight is scaled, so it is no BREAK any more (as in A1111).
    #expect(try PromptParser.parse("(a BREAK b)").contains { $0.text == "BREAK" && $0.weight == -1.1 && !$0.isBreak })
}

@Test func invalidWeightsAreErrorsThatSayWhatToDo() throws {
    #expect(throws: PromptSyntaxError.invalidWeight("1.2.3")) { try PromptParser.parse("(cat:1.2.3)") }
    #expect(PromptSyntaxError.invalidWeight(".").description.contains("(text:1.2)"))
    // Without an open bracket the same characters are plain text, as in A1111.
    #expect(try PromptParser.parse("cat:1.2.3)") == [PromptFragment(text: "cat:1.2.3)", weight: 1)])
}

@Test func chunksOfShortPromptsCarryWeights() throws {
    let chunker = PromptChunker(tokenizer: try CLIPTokenizer.shared())
    let result = try chunker.chunks(for: "a (cat:1.5)")
    #expect(result.tokens.count == 1)
    #expect(Array(result.tokens[0][..<4]) == [49406, 320, 2368, 49407])
    #expect(result.tokens[0].count == 77)
    #expect(Array(result.weights[0][..<4]) == [1, 1, 1.5, 1])
    #expect(result.weights[0][4...].allSatisfy { $0 == 1 })
    #expect(result.tokenCount == 2)

    let sd2 = PromptChunker(tokenizer: try CLIPTokenizer.shared(), padding: .exclamationMark)
    #expect(Array(try sd2.chunks(for: "a cat").tokens[0][..<6]) == [49406, 320, 2368, 49407, 0, 0])
}

@Test func breakPadsTheChunkOut() throws {
    let chunker = PromptChunker(tokenizer: try CLIPTokenizer.shared())
    let result = try chunker.chunks(for: "a cat BREAK a dog")
    #expect(result.tokens.count == 2)
    #expect(Array(result.tokens[0][..<4]) == [49406, 320, 2368, 49407])
    #expect(Array(result.tokens[1][..<4]) == [49406, 320, 1929, 49407])
    #expect(result.tokenCount == 75 + 2)
}

@Test func longPromptsSplitAt75WithCommaBacktrack() throws {
    let tokenizer = try CLIPTokenizer.shared()
    // 70 words, a comma, 10 more: the chunk fills at 75 tokens, 4 after the comma, so those 4 move on.
    let prompt = Array(repeating: "cat", count: 70).joined(separator: " ") + ", " + Array(repeating: "dog", count: 10).joined(separator: " ")
    let backtracked = try PromptChunker(tokenizer: tokenizer).chunks(for: prompt)
    #expect(backtracked.tokens.count == 2)
    #expect(Array(backtracked.tokens[0][69...72]) == [2368, 2368, 267, 49407])
    #expect(backtracked.tokens[1][1...10].allSatisfy { $0 == 1929 })
    #expect(backtracked.tokens[1][11] == 49407)
    #expect(backtracked.tokenCount == 75 + 10)

    let plain = try PromptChunker(tokenizer: tokenizer, commaPaddingBacktrack: 0).chunks(for: prompt)
    #expect(plain.tokens[0][72...75].allSatisfy { $0 == 1929 })
    #expect(plain.tokens[1][1...6].allSatisfy { $0 == 1929 })
    #expect(plain.tokens[1][7] == 49407)
    #expect(plain.tokens.allSatisfy { $0.count == 77 && $0.first == 49406 && $0.last == 49407 })
}
