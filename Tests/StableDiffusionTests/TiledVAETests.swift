import Foundation
import StableDiffusion
import Tensors
import Testing

/// A smooth latent (as real latents are), so that tiles see similar statistics.
func smoothLatent(_ size: Int, channels: Int = 4) -> Tensor {
    var values: [Float] = []
    for c in 0..<channels {
        for y in 0..<size {
            for x in 0..<size {
                values.append(sin(Float(x) * 0.31 + Float(c)) * cos(Float(y) * 0.23 - Float(c)) * 0.8)
            }
        }
    }
    return Tensor(shape: [1, channels, size, size], values: values)
}

@Test func tiledDecodeMatchesUntiledAndBoundsMemory() throws {
    let model = try NetworkFixtures.model("tiny-sd1")
    let vae = try VAE(config: model.vaeConfig, weights: model.vae)
    let tile = 8
    let latents = smoothLatent(4 * tile)
    var whole = Tensor(zeros: [1])
    let untiled = BufferPool.track { whole = vae.decode(latents) }
    var tiled = Tensor(zeros: [1])
    let tiledStatistics = BufferPool.track { tiled = vae.decodeTiled(latents, tile: tile) }
    #expect(tiled.shape == whole.shape)
    #expect(tiled.shape == [1, 3, 4 * tile * vae.downscaleFactor, 4 * tile * vae.downscaleFactor])
    // How far tiling moves pixels depends on the weights: GroupNorm statistics are
    // per tile. With these random weights diffusers' own tiled decode differs from its
    // untiled one by 6.44/255 on average for this latent (Tools: networks fixture
    // "vae_tiled" checks we match diffusers tile for tile); the < 2/255 bound of a
    // trained VAE is checked on the trained demo model.
    let meanDifference = (tiled - whole).map { abs($0) }.mean() * 255 / 2
    #expect(abs(meanDifference - 6.442) < 0.01, "tiled decode differs by \(meanDifference)/255 on average; diffusers: 6.442")
    // The output image is the largest buffer of a tiled decode; every working buffer
    // is tile-sized, while the untiled decode's activations are image-sized.
    #expect(tiledStatistics.largestRequest == tiled.count)
    #expect(untiled.largestRequest > tiled.count)

    // Doubling the image side leaves the tiled decode's working buffers the same size.
    let bigger = smoothLatent(8 * tile)
    var big = Tensor(zeros: [1])
    let biggerStatistics = BufferPool.track { big = vae.decodeTiled(bigger, tile: tile) }
    #expect(biggerStatistics.largestRequest == big.count)
}
