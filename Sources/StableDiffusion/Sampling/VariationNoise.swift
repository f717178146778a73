import Foundation

/// Variation seeds and seed resizing as the AUTOMATIC1111 web UI defines them (`modules/rng.py`, `ImageRNG.first`):
/// image i's starting noise is the noise of seed + i, spherically interpolated toward that of subseed + i by the
/// strength; with "seed resize from" both are drawn at the other size and pasted centred into a fresh full-size draw.
struct VariationNoise {
    /// Variation seed of image 0.
    let subseed: UInt64
    /// Slerp weight toward the variation noise.
    let strength: Float
    /// The seed-resize size in latent cells (width, height); nil: none.
    let resizeCells: (width: Int, height: Int)?
    /// Makes the generators of the other seeds.
    let source: NoiseSource
    /// Seed of image 0.
    let seed: UInt64

    /// The variation of `settings`, or nil when it asks for none (the plain draw is then the starting noise).
    init?(settings: Pipeline.Settings, latentScale: Int) {
        let cells = settings.seedResizeFrom.map { (width: $0.width / latentScale, height: $0.height / latentScale) }
        guard settings.subseedStrength != 0 || cells != nil else { return nil }
        (subseed, strength, resizeCells, source, seed) = (settings.subseed, settings.subseedStrength, cells, settings.noise, settings.seed)
    }

    /// Image `image`'s starting noise of `shape` [C, H, W], drawn as the web UI draws it: the variation noise from a
    /// fresh generator of subseed + i; the base noise from `generator` (or, resized, from a fresh one of seed + i);
    /// resized, the full-size draw then comes from `generator`, which goes on to give the sampler's later noise.
    func firstNoise(image: Int, generator: inout any NoiseGenerator, shape: [Int]) -> [Float] {
        let noiseShape = resizeCells.map { [shape[0], $0.height, $0.width] } ?? shape
        let count = noiseShape.reduce(1, *)
        var noise =
            resizeCells == nil
            ? generator.randn(count)
            : {
                var fresh = source.generator(seed: seed &+ UInt64(image))
                return fresh.randn(count)
            }()
        if strength != 0 {
            var other = source.generator(seed: subseed &+ UInt64(image))
            noise = Self.slerp(strength, noise, other.randn(count), shape: noiseShape)
        }
        guard resizeCells != nil else { return noise }
        var full = generator.randn(shape.reduce(1, *))
        Self.paste(noise, shape: noiseShape, into: &full, shape: shape)
        return full
    }

    /// The web UI's `slerp(val, low, high)` on one image's [C, H, W] noise: the vectors it interpolates run along H
    /// (its `dim=1`), one per channel and column; when they are almost parallel on average it blends linearly, with
    /// the weights the web UI uses (`low·val + high·(1 − val)`). Float32, as torch computes it.
    static func slerp(_ value: Float, _ low: [Float], _ high: [Float], shape: [Int]) -> [Float] {
        let (channels, height, width) = (shape[0], shape[1], shape[2])
        var dots = [Float](repeating: 0, count: channels * width)
        for c in 0..<channels {
            for x in 0..<width {
                var (lowSquares, highSquares): (Float, Float) = (0, 0)
                for y in 0..<height {
                    let index = (c * height + y) * width + x
                    lowSquares += low[index] * low[index]
                    highSquares += high[index] * high[index]
                }
                let (lowNorm, highNorm) = (lowSquares.squareRoot(), highSquares.squareRoot())
                var dot: Float = 0
                for y in 0..<height {
                    let index = (c * height + y) * width + x
                    dot += (low[index] / lowNorm) * (high[index] / highNorm)
                }
                dots[c * width + x] = dot
            }
        }
        if dots.reduce(0, +) / Float(dots.count) > 0.9995 {
            return zip(low, high).map { $0 * value + $1 * (1 - value) }
        }
        var result = [Float](repeating: 0, count: low.count)
        for c in 0..<channels {
            for x in 0..<width {
                let omega = acos(dots[c * width + x])
                let sine = sin(omega)
                let (lowWeight, highWeight) = (sin((1 - value) * omega) / sine, sin(value * omega) / sine)
                for y in 0..<height {
                    let index = (c * height + y) * width + x
                    result[index] = lowWeight * low[index] + highWeight * high[index]
                }
            }
        }
        return result
    }

    /// Pastes `small` [C, h, w] centred into `full` [C, H, W], cropping it centred where it is larger (the web UI's
    /// `x[:, ty:ty+h, tx:tx+w] = noise[:, dy:dy+h, dx:dx+w]`, with Python's floor division).
    static func paste(_ small: [Float], shape smallShape: [Int], into full: inout [Float], shape: [Int]) {
        func floorHalf(_ value: Int) -> Int { value >= 0 ? value / 2 : -((-value + 1) / 2) }
        let dx = floorHalf(shape[2] - smallShape[2])
        let dy = floorHalf(shape[1] - smallShape[1])
        let w = dx >= 0 ? smallShape[2] : smallShape[2] + 2 * dx
        let h = dy >= 0 ? smallShape[1] : smallShape[1] + 2 * dy
        let (tx, ty, sx, sy) = (max(dx, 0), max(dy, 0), max(-dx, 0), max(-dy, 0))
        // Python slices clip at the end: a width that overruns either side is cut there.
        let columns = min(w, shape[2] - tx, smallShape[2] - sx)
        let rows = min(h, shape[1] - ty, smallShape[1] - sy)
        guard columns > 0, rows > 0 else { return }
        for c in 0..<shape[0] {
            for y in 0..<rows {
                for x in 0..<columns {
                    full[(c * shape[1] + ty + y) * shape[2] + tx + x] = small[(c * smallShape[1] + sy + y) * smallShape[2] + sx + x]
                }
            }
        }
    }
}
