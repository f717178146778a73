import Foundation
import Testing

/// The `cases` of a JSON fixture in Fixtures/ (written by Tools/make_*_fixtures.py). A file that
/// is missing or does not decode gives no cases, so `fixtureSetsAreComplete` counts every set:
/// a parameterised test over an empty set would otherwise pass without checking anything.
func fixtureCases<Case: Decodable>(_ file: String, as type: Case.Type = Case.self) -> [Case] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(file)")
    return (try? JSONDecoder().decode(FixtureFile<Case>.self, from: Data(contentsOf: url)))?.cases ?? []
}

@Test func fixtureSetsAreComplete() {
    #expect(pipelineCases.count == 19)
    #expect(img2imgCases.count == 10)
    #expect(inpaintCases.count == 4)
    #expect(secondInpaintCases.count == 40)
    #expect(controlNetCases.count == 2)
    #expect(NetworkFixtures.cases.count == 16)
    #expect(SDEFixtures.file?.zero_noise.count == 2)
    #expect(demoCases.count == 20)
    #expect(sd2PromptCases.count == 12)
}

/// The shape every case fixture shares: `{"cases": [...]}`.
private struct FixtureFile<Case: Decodable>: Decodable {
    let cases: [Case]
}
