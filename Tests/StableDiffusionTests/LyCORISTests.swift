import Foundation
import StableDiffusion
import Tensors
import Testing

/// One weight patched by a LoHa or LoKr file, as Tools/make_lora_fixtures.py computes it from the LyCORIS/PEFT
/// definitions (Fixtures/lycoris.json).
struct LyCORISCase: Decodable, Sendable, CustomTestStringConvertible {
    let file: String
    let weight: Float
    let target: String
    let shape: [Int]
    let values: [Float]
    var testDescription: String { "\(file) \(target) × \(weight)" }
}

@Test func lycorisFixtureCoversLoHaAndBothLoKrForms() throws {
    let cases = try fixtureCases("lycoris.json", as: LyCORISCase.self)
    #expect(cases.filter { $0.file == "sd1-loha" }.count == 3 && cases.filter { $0.file == "sd1-lokr" }.count == 2)
    #expect(cases.contains { $0.shape.count == 4 && $0.shape[2] == 3 } && cases.contains { $0.shape.count == 2 })
}

@Test(arguments: try fixtureCases("lycoris.json", as: LyCORISCase.self))
func lycorisPatchMatchesItsDefinition(_ fixture: LyCORISCase) throws {
    let model = try ModelWeights.load(modelFixtures.appendingPathComponent("tiny-sd1"))
    let file = try LoRAFile.load(loraFixtures.appendingPathComponent(fixture.file + ".safetensors"))
    let (patched, report) = try model.applying([WeightedLoRA(file: file, weight: fixture.weight)])
    #expect(report.unet.contains(fixture.target))
    let weight = try #require(patched.unet[fixture.target + ".weight"])
    #expect(weight.shape == fixture.shape)
    let error = zip(weight.scalars, fixture.values).map { abs($0 - $1) }.max() ?? .infinity
    #expect(error < 1e-5, "patched weight differs by \(error)")
    #expect(weight.scalars != model.unet[fixture.target + ".weight"]!.scalars)
}
