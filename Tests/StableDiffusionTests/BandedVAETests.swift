import Foundation
import StableDiffusion
import Tensors
import Testing

/// A deterministic, non-smooth latent batch (values in about [-2, 2]).
private func latentBatch(_ batch: Int, channels: Int, height: Int, width: Int) -> Tensor {
    let count = batch * channels * height * width
    let values: [Float] = (0..<count).map { index in
        let phase = Float(index) * 0.731 + Float(index % 7) * 0.4
        return 2 * sin(phase)
    }
    return Tensor(shape: [batch, channels, height, width], values: values)
}

/// The banded decoder (every activation in bands of two rows, the smallest there are, so that every band meets
/// the image's edges or a halo row another band overwrote), with or without upsampler outputs held, computes what
/// the whole decoder does: that decoder is
/// the one the diffusers parity fixtures check. Batch 2, odd and non-square sizes, SD's and SDXL's VAEs.
@Test(arguments: [("tiny-sd1", 9, 6), ("tiny-sd1", 4, 11), ("tiny-sdxl", 7, 5)])
func bandedDecodeEqualsWholeDecode(model name: String, height: Int, width: Int) throws {
    let model = try ModelWeights.load(modelFixtures.appendingPathComponent(name))
    let vae = try VAE(config: model.vaeConfig, weights: model.vae)
    let latents = latentBatch(2, channels: model.vaeConfig.latentChannels, height: height, width: width)
    let whole = vae.decode(latents, bands: DecodeBands(fromBytes: Int.max, bandBytes: 0))
    let banded = vae.decode(latents, bands: DecodeBands(fromBytes: 0, bandBytes: 0))
    #expect(banded.shape == [2, 3, height * vae.downscaleFactor, width * vae.downscaleFactor])
    #expect(banded.shape == whole.shape)
    let largest = banded.maxAbsDifference(whole)
    // Winograd tiles start at other rows in a band than in the whole map: float rounding, nothing more.
    #expect(largest < 1e-5, "banded decode differs from the whole decode by up to \(largest)")
    #expect(whole.absMax() > 0.1, "the decode is not trivially small")
    // Upsampler outputs recomputed band by band inside the block after them, never held.
    let recomputed = vae.decode(latents, bands: DecodeBands(fromBytes: 0, bandBytes: 0, recomputeFromBytes: 0))
    #expect(recomputed.maxAbsDifference(whole) < 1e-5)
    // Bands of many rows (one band per image at these sizes) give the same as two-row bands.
    let wide = vae.decode(latents, bands: DecodeBands(fromBytes: 0, bandBytes: 1 << 30))
    #expect(wide.maxAbsDifference(whole) < 1e-5)
}

/// Band heights fill whole Winograd tiles with their halo rows and follow the byte budget.
@Test func bandRowsFollowTheBudget() {
    #expect(Tensor.bandRows(channels: 256, width: 1024, bytes: 32 << 20) == 30)
    #expect(Tensor.bandRows(channels: 128, width: 1024, bytes: 32 << 20) == 62)
    #expect(Tensor.bandRows(channels: 512, width: 4096, bytes: 32 << 20) == 2)
    for channels in [3, 64, 320] {
        let rows = Tensor.bandRows(channels: channels, width: 200, bytes: 8 << 20)
        #expect((rows + 2) % 4 == 0 && rows * channels * 200 * 4 <= 8 << 20)
    }
}
