import Tensors

/// From latents to pixels and back: the VAE decode, the live preview, and the byte conversions.
extension Pipeline {
    /// Decodes latents to RGB images, 8 bits per sample, rows top to bottom (as diffusers'
    /// `numpy_to_pil`: (x/2 + 0.5) clamped to [0, 1], × 255, rounded half to even).
    /// `tiled` decodes in tiles of the VAE's sample size (memory bounded by the tile, not the
    /// image) with those group-norm statistics; nil decodes the whole image at once. With `tinyAutoencoder` set, TAESD
    /// decodes instead (whole, as its activations are a fraction of the VAE's).
    public func decode(_ latents: Tensor, tiled: TileStatistics? = nil) -> [[UInt8]] {
        // The pool holds the sampler's large buffers, whose sizes the VAE never asks for: return
        // them before the decoder makes its full-resolution tensors, and keep the decoder's out of
        // it (the next image samples first). Buffers under a megabyte stay for other threads' loops.
        BufferPool.drain(atLeast: 1 << 20)
        return BufferPool.unpooled {
            if let tiny = tinyAutoencoder, tiny.canDecode {
                return Pipeline.bytes(tiny.decode(latents.scaled(by: 1 / Float(tiny.config.scalingFactor))))
            }
            let scaled = latents.scaled(by: 1 / Float(vae.config.scalingFactor))
            let tile = max(1, vae.config.sampleSize / vae.downscaleFactor)
            let pixels = tiled.map { vae.decodeTiled(scaled, tile: tile, statistics: $0) } ?? vae.decode(scaled)
            return Pipeline.bytes(pixels)
        }
    }

    /// A cheap preview of the first image in `latents`, at latent resolution: SD's 4 latent
    /// channels projected linearly to RGB (the factors the web UIs use for live previews),
    /// instead of a VAE decode. Returns (width, height, interleaved RGB bytes).
    public static func preview(_ latents: Tensor) -> (width: Int, height: Int, rgb: [UInt8]) {
        let (channels, height, width) = (latents.shape[1], latents.shape[2], latents.shape[3])
        let factors: [[Float]] = [
            [0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
            [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177],
        ]
        let plane = height * width
        var rgb = [UInt8](repeating: 0, count: plane * 3)
        latents.withUnsafeBufferPointer { values in
            for p in 0..<plane {
                for c in 0..<3 {
                    var sum: Float = 0
                    for k in 0..<min(channels, 4) { sum += values[k * plane + p] * factors[k][c] }
                    rgb[p * 3 + c] = UInt8(Swift.min(Swift.max((sum + 1) / 2, 0), 1) * 255)
                }
            }
        }
        return (width, height, rgb)
    }

    /// Interleaved 8-bit RGB (rows top to bottom) → [1, 3, H, W] in [-1, 1], as diffusers' image processor.
    public static func pixels(rgb bytes: [UInt8], width: Int, height: Int) -> Tensor {
        precondition(bytes.count == width * height * 3, "expected \(width * height * 3) RGB bytes")
        var values = [Float](repeating: 0, count: bytes.count)
        for p in 0..<(width * height) {
            for c in 0..<3 { values[c * width * height + p] = Float(bytes[p * 3 + c]) / 255 * 2 - 1 }
        }
        return Tensor(shape: [1, 3, height, width], values: values)
    }

    /// [N, 3, H, W] pixels in [-1, 1] → N interleaved RGB byte arrays.
    public static func bytes(_ pixels: Tensor) -> [[UInt8]] {
        let (batch, channels, height, width) = (pixels.shape[0], pixels.shape[1], pixels.shape[2], pixels.shape[3])
        let values = pixels.scalars
        return (0..<batch).map { n in
            var bytes = [UInt8](repeating: 0, count: height * width * channels)
            for c in 0..<channels {
                for p in 0..<(height * width) {
                    let x = Swift.min(Swift.max(values[(n * channels + c) * height * width + p] / 2 + 0.5, 0), 1)
                    bytes[p * channels + c] = UInt8((x * 255).rounded(.toNearestOrEven))
                }
            }
            return bytes
        }
    }
}
