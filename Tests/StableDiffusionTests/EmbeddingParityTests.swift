import Foundation
import StableDiffusion
import Tensors
import Testing

/// Fixtures/embeddings/: the embeddings Tools/make_embedding_fixtures.py writes.
let embeddingFixtures = fixtureFolder.appendingPathComponent("embeddings")

/// One diffusers run with textual-inversion vectors added to the text encoders (Fixtures/embeddings.json).
struct EmbeddingCase: Decodable, Sendable, CustomTestStringConvertible {
    let run: DiffusersRun
    let output: DiffusersOutput
    let model: String
    /// The embedding files, in the order their vectors take ids from 49408.
    let embeddings: [String]
    let ids2: [Int]?
    let negativeIDs2: [Int]?
    var testDescription: String { "\(model) " + embeddings.joined(separator: " ") }

    private enum CodingKeys: String, CodingKey {
        case model, embeddings
        case ids2 = "ids_2"
        case negativeIDs2 = "negative_ids_2"
    }

    init(from decoder: any Decoder) throws {
        run = try DiffusersRun(from: decoder)
        output = try DiffusersOutput(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decode(String.self, forKey: .model)
        embeddings = try container.decode([String].self, forKey: .embeddings)
        ids2 = try container.decodeIfPresent([Int].self, forKey: .ids2)
        negativeIDs2 = try container.decodeIfPresent([Int].self, forKey: .negativeIDs2)
    }
}

@Test func embeddingFixtureSetIsComplete() throws {
    let cases = try fixtureCases("embeddings.json", as: EmbeddingCase.self)
    #expect(cases.map(\.model) == ["tiny-sd1", "tiny-sdxl"])
    #expect(cases[0].run.ids.filter { $0 >= TextualInversion.firstTokenID }.count == 3)
}

@Test(arguments: try fixtureCases("embeddings.json", as: EmbeddingCase.self))
func embeddingRenderMatchesDiffusers(_ fixture: EmbeddingCase) throws {
    var pipeline = try Pipeline(weights: try ModelWeights.load(modelFixtures.appendingPathComponent(fixture.model)))
    let files = try fixture.embeddings.map { try TextualInversion.load(embeddingFixtures.appendingPathComponent($0)) }
    let embeddings = try PromptEmbeddings(
        files, encoderWidths: pipeline.textEncoders.map(\.config.hiddenSize), tokenizer: try CLIPTokenizer.shared())
    pipeline.embeddings = embeddings
    let settings = try fixture.run.settings.pipeline(sampler: "euler")
    let latents: Tensor
    if let ids2 = fixture.ids2, let negativeIDs2 = fixture.negativeIDs2 {
        latents = try pipeline.sample(
            conditional: pipeline.encodeXL(tokens: [[fixture.run.ids], [ids2]]),
            unconditional: pipeline.encodeXL(tokens: [[fixture.run.negativeIDs], [negativeIDs2]]), settings: settings)
    } else {
        let extra = embeddings.rows(encoder: 0)
        latents = try pipeline.sample(
            conditional: pipeline.textEncoder([fixture.run.ids], extra: extra),
            unconditional: pipeline.textEncoder([fixture.run.negativeIDs], extra: extra), settings: settings)
    }
    expectMatchesDiffusers(pipeline, latents: latents, run: fixture.run, output: fixture.output)
}

/// Every format reads to its vectors: the web UI's .pt, emb_params, diffusers' learned_embeds, SDXL's pair.
@Test func embeddingFormatsLoad() throws {
    func load(_ name: String) throws -> TextualInversion { try TextualInversion.load(embeddingFixtures.appendingPathComponent(name)) }
    let pt = try load("tiny-emb.pt")
    #expect(pt.name == "tiny-emb" && pt.count == 2)
    #expect(try pt.rows(forEncoderWidths: [16])[0].shape == [2, 16])
    #expect(try load("tiny-neg.safetensors").count == 3)
    #expect(try load("tiny-learned.safetensors").count == 1)
    let xl = try load("tiny-xl-emb.safetensors")
    #expect(try xl.rows(forEncoderWidths: [32, 48]).map(\.shape) == [[2, 32], [2, 48]])
    #expect(try xl.rows(forEncoderWidths: [48]).map(\.shape) == [[2, 48]])
}

/// A name in the prompt becomes its vectors' ids, one position per vector, with the weight of its parentheses.
@Test func embeddingNamesBecomeTheirVectorsInChunks() throws {
    let tokenizer = try CLIPTokenizer.shared()
    let files = try ["tiny-emb.pt", "tiny-neg.safetensors"].map { try TextualInversion.load(embeddingFixtures.appendingPathComponent($0)) }
    var chunker = PromptChunker(tokenizer: tokenizer)
    chunker.embeddings = try PromptEmbeddings(files, encoderWidths: [16], tokenizer: tokenizer)
    let chunks = try chunker.chunks(for: "a photo, (tiny-emb:1.2), tiny-neg")
    let plain = tokenizer.encode("a photo, ")
    let first = TextualInversion.firstTokenID
    let comma = tokenizer.encode(",")
    #expect(
        Array(chunks.tokens[0][1..<(1 + plain.count + 2 + comma.count + 3)]) == plain + [first, first + 1] + comma + [
            first + 2, first + 3, first + 4,
        ])
    #expect(chunks.weights[0][1 + plain.count] == 1.2 && chunks.weights[0][2 + plain.count] == 1.2)
    #expect(chunks.tokenCount == plain.count + 2 + comma.count + 3)
    let found = try PromptEmbeddings.named(in: ["(tiny-emb:1.2) cat", "tiny-negative"], folders: [embeddingFixtures])
    #expect(found.map(\.name) == ["tiny-emb"])
}
