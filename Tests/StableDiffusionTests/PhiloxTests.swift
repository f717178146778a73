import Foundation
import StableDiffusion
import Testing

/// Known-answer vectors of Random123's kat_vectors file (philox4x32, 10 rounds).
@Test func philoxMatchesRandom123KnownAnswers() {
    let cases: [((UInt32, UInt32, UInt32, UInt32), (UInt32, UInt32), (UInt32, UInt32, UInt32, UInt32))] = [
        ((0, 0, 0, 0), (0, 0), (0x6627_E8D5, 0xE169_C58D, 0xBC57_AC4C, 0x9B00_DBD8)),
        ((.max, .max, .max, .max), (.max, .max), (0x408F_276D, 0x41C8_3B0E, 0xA20B_C7C6, 0x6D54_51FD)),
        (
            (0x243F_6A88, 0x85A3_08D3, 0x1319_8A2E, 0x0370_7344), (0xA409_3822, 0x299F_31D0),
            (0xD16C_FE09, 0x94FD_CCEB, 0x5001_E420, 0x2412_6EA1)
        ),
    ]
    for (counter, key, expected) in cases {
        let out = Philox4x32.block(counter: counter, key: key)
        #expect([out.0, out.1, out.2, out.3] == [expected.0, expected.1, expected.2, expected.3])
    }
}

@Test func philoxNormalsFollowTheWebUIsLayout() {
    var generator = PhiloxGenerator(seed: 1234)
    let first = generator.randn(4096)
    let second = generator.randn(16)
    #expect(generator.offset == 2, "each draw advances the counter's first word")
    // Value i of the first draw comes from counter (0, 0, i, 0) and key (seed, 0).
    let words = Philox4x32.block(counter: (0, 0, 5, 0), key: (1234, 0))
    let u = Double(words.0) * 0x1p-32 + 0x1p-33
    let c = Double(Float(2.3283064e-10 * 6.2831855))
    let v = Double(words.1) * c + c / 2
    #expect(first[5] == Float((-2 * log(u)).squareRoot() * sin(v)))
    // A fresh generator with the same seed repeats; another offset does not.
    var again = PhiloxGenerator(seed: 1234)
    #expect(again.randn(4096) == first)
    #expect(Array(first.prefix(16)) != second)
    // Standard normal: mean ≈ 0, variance ≈ 1 over 4096 values (3σ bounds).
    let mean = first.reduce(0, +) / Float(first.count)
    let variance = first.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(first.count)
    #expect(abs(mean) < 3 / Float(first.count).squareRoot())
    #expect(abs(variance - 1) < 3 * (2 / Float(first.count)).squareRoot())
}
