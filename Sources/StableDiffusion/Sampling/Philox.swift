import Foundation

/// The Philox4x32-10 counter-based generator (Salmon et al., Random123).
public enum Philox4x32 {
    static let multipliers: (UInt32, UInt32) = (0xD251_1F53, 0xCD9E_8D57)
    static let weyl: (UInt32, UInt32) = (0x9E37_79B9, 0xBB67_AE85)

    /// The 4 words Philox4x32 with `rounds` rounds makes of a counter and a key.
    public static func block(
        counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32),
        rounds: Int = 10
    ) -> (UInt32, UInt32, UInt32, UInt32) {
        var c = counter
        var k = key
        for round in 0..<rounds {
            let p0 = UInt64(multipliers.0) * UInt64(c.0)
            let p1 = UInt64(multipliers.1) * UInt64(c.2)
            c = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ c.1 ^ k.0, UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ c.3 ^ k.1, UInt32(truncatingIfNeeded: p0)
            )
            if round < rounds - 1 { k = (k.0 &+ weyl.0, k.1 &+ weyl.1) }
        }
        return c
    }
}

/// The web UI's "NV" generator: value i of draw number `offset` is Philox4x32-10 of the
/// counter (offset, 0, i, 0) and the key (seed low, seed high), turned into a normal by
/// Box–Muller on the first two words, computed in double precision and rounded to float32
/// (A1111's modules/rng_philox.py does the same arithmetic in NumPy).
public struct PhiloxGenerator: NoiseGenerator {
    /// The seed, used as the Philox key.
    public let seed: UInt64
    /// How many `randn` calls came before (the counter's first word).
    public private(set) var offset: UInt32 = 0

    /// A generator for `seed`, at offset 0.
    public init(seed: UInt64) {
        self.seed = seed
    }

    public mutating func randn(_ count: Int) -> [Float] {
        let key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        let scale = 0x1p-32 as Double
        // The web UI's constant is float32(2^-32 · 6.2831855), widened again.
        let angleScale = Double(Float(2.3283064e-10 * 6.2831855))
        let values = (0..<count).map { index -> Float in
            let words = Philox4x32.block(counter: (offset, 0, UInt32(truncatingIfNeeded: index), 0), key: key)
            let u = Double(words.0) * scale + scale / 2
            let v = Double(words.1) * angleScale + angleScale / 2
            return Float((-2 * log(u)).squareRoot() * sin(v))
        }
        offset &+= 1
        return values
    }
}
