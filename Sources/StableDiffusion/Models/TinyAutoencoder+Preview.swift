import Tensors

/// Live previews from TAESD: the first image of the sampler's latents decoded to real colours and detail, instead
/// of the linear latent-to-RGB projection (`Pipeline.preview`), at a size a progress message can carry.
extension TinyAutoencoder {
    /// The first image of `latents` [N, C, H, W] (as the UNet sees them) decoded, average-pooled by the smallest
    /// power of two that brings its longer side to at most `maxSide`. Returns (width, height, interleaved RGB bytes).
    public func preview(_ latents: Tensor, maxSide: Int = 512) -> (width: Int, height: Int, rgb: [UInt8]) {
        let first = latents.slice(axis: 0, range: 0..<1)
        var pixels = decode(first.scaled(by: 1 / Float(config.scalingFactor)))
        var factor = 1
        while max(pixels.shape[2], pixels.shape[3]) / factor > max(maxSide, 1) && 2 * factor <= min(pixels.shape[2], pixels.shape[3]) {
            factor *= 2
        }
        if factor > 1 { pixels = pixels.averagePooled(factor) }
        return (pixels.shape[3], pixels.shape[2], Pipeline.bytes(pixels)[0])
    }
}
