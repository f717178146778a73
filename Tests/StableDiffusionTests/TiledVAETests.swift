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
    let tiledStatistics = BufferPool.track { tiled = vae.decodeTiled(latents, tile: tile, statistics: .perTile) }
    #expect(tiled.shape == whole.shape)
    #expect(tiled.shape == [1, 3, 4 * tile * vae.downscaleFactor, 4 * tile * vae.downscaleFactor])
    // How far tiling moves pixels depends on the weights. With per-tile GroupNorm statistics
    // and these random weights, diffusers' own tiled decode differs from its untiled one by
    // 6.44/255 on average for this latent (Tools: networks fixture "vae_tiled" checks we match
    // diffusers tile for tile); shared statistics bring it to 4.43/255 (what remains is the
    // mid block's attention, which sees one tile, and the tiles' cut edges). The < 2/255
    // bound of a trained VAE is checked on the trained demo model.
    let meanDifference = (tiled - whole).map { abs($0) }.mean() * 255 / 2
    #expect(abs(meanDifference - 6.442) < 0.01, "tiled decode differs by \(meanDifference)/255 on average; diffusers: 6.442")
    let sharedDifference = (vae.decodeTiled(latents, tile: tile) - whole).map { abs($0) }.mean() * 255 / 2
    #expect(abs(sharedDifference - 4.434) < 0.01, "shared statistics: \(sharedDifference)/255; measured 4.434")
    // The output image is the largest buffer of a tiled decode; every working buffer
    // is tile-sized, while the untiled decode's activations are image-sized.
    #expect(tiledStatistics.largestRequest == tiled.count)
    #expect(untiled.largestRequest > tiled.count)

    // Doubling the image side leaves the tiled decode's working buffers the same size.
    let bigger = smoothLatent(8 * tile)
    var big = Tensor(zeros: [1])
    let biggerStatistics = BufferPool.track { big = vae.decodeTiled(bigger, tile: tile) }
    #expect(biggerStatistics.largestRequest == big.count)
    withExtendedLifetime(big) {}
}

/// A 256×256 scene like the demo model's training images: a two-tone background with a grid
/// of discs and squares in the palette's colours (interleaved RGB bytes).
func demoScene256() -> [UInt8] {
    let size = 256
    var rgb = [UInt8](repeating: 0, count: size * size * 3)
    func colour(_ index: Int) -> [UInt8] {
        let c = demoPalette[index % demoPalette.count].rgb
        return [UInt8(c.0), UInt8(c.1), UInt8(c.2)]
    }
    for y in 0..<size {
        for x in 0..<size {
            var pixel = colour(y < 100 ? 2 : 3)
            // A 4×4 grid of shapes, alternately discs and squares, none centred on a tile edge.
            let (cellX, cellY) = (x / 64, y / 64)
            let (cx, cy) = (cellX * 64 + 29 + cellY * 3, cellY * 64 + 35 - cellX * 2)
            let radius = 9 + (cellX + cellY) % 3 * 4
            let (dx, dy) = (x - cx, y - cy)
            let inside = (cellX + cellY) % 2 == 0 ? dx * dx + dy * dy <= radius * radius : abs(dx) <= radius && abs(dy) <= radius
            if inside { pixel = colour(cellX * 3 + cellY * 5 + 1) }
            for c in 0..<3 { rgb[(y * size + x) * 3 + c] = pixel[c] }
        }
    }
    return rgb
}

@Test func demoVAETiledDecodeStaysCloseAndBoundsMemory() throws {
    let pipeline = try demoPipeline.get()
    let vae = pipeline.vae
    let tile = vae.config.sampleSize / vae.downscaleFactor
    let pixels = Pipeline.pixels(rgb: demoScene256(), width: 256, height: 256)
    let latents = vae.encode(pixels).mean
    #expect(latents.shape == [1, 4, 4 * tile, 4 * tile], "a latent 4× the tile size")
    let whole = vae.decode(latents)
    var tiled = Tensor(zeros: [1])
    let statistics = BufferPool.track { tiled = vae.decodeTiled(latents, tile: tile) }
    #expect(tiled.shape == whole.shape)
    // The trained VAE reproduces the scene (so the comparison is between two good images).
    let reconstruction = (whole - pixels).map { abs($0) }.mean() * 255 / 2
    #expect(reconstruction < 12, "the VAE reconstructs the scene within \(reconstruction)/255 on average")
    // Issue 5 asks for < 2/255. Tiles of the config's sample size, 25 % overlap, sharing the
    // whole image's GroupNorm statistics: 1.22/255 on average. Diffusers' tiling (per-tile
    // statistics, which ours matches tile for tile: see tiledDecodeMatchesUntiledAndBoundsMemory)
    // gives 5.38/255 here.
    let meanDifference = (tiled - whole).map { abs($0) }.mean() * 255 / 2
    #expect(meanDifference < 2, "tiled decode differs from the untiled one by \(meanDifference)/255 on average")
    let perTileDifference = (vae.decodeTiled(latents, tile: tile, statistics: .perTile) - whole).map { abs($0) }.mean() * 255 / 2
    #expect(abs(perTileDifference - 5.379) < 0.01, "per-tile statistics: \(perTileDifference)/255; measured 5.379")
    // Memory: a tiled decode's largest buffer is the output or one tile's working buffer, whatever the image size.
    var one = Tensor(zeros: [1])
    let tileLatent = Tensor(shape: [1, 4, tile, tile], values: Array(latents.scalars.prefix(4 * tile * tile)))
    let perTile = BufferPool.track { one = vae.decode(tileLatent) }
    #expect(statistics.largestRequest <= max(tiled.count, perTile.largestRequest))
    // Four times the pixels: the working buffers stay those of one tile.
    let biggerLatents = Tensor(shape: [1, 4, 8 * tile, 8 * tile], values: (0..<(4 * 64 * tile * tile)).map { latents.scalars[$0 % latents.count] })
    var bigger = Tensor(zeros: [1])
    let biggerStatistics = BufferPool.track { bigger = vae.decodeTiled(biggerLatents, tile: tile) }
    #expect(bigger.shape == [1, 3, 8 * tile * vae.downscaleFactor, 8 * tile * vae.downscaleFactor])
    #expect(biggerStatistics.largestRequest <= max(bigger.count, perTile.largestRequest))
    withExtendedLifetime(one) {}
}
