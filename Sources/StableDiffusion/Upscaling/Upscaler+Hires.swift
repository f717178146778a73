import Foundation
import Tensors

/// A pixel upscaler as hires fix's upscale step, as the web UI runs a non-latent `hr_upscaler` (`processing.py`): each
/// image of the first pass decoded by the pipeline's VAE to 8-bit pixels, upscaled by the model (tiled) and shrunk by
/// area to exactly the target, quantised to 8 bits again (the web UI passes PIL images), then encoded by the VAE
/// (the posterior's mean, so that the step draws no noise) and scaled for the UNet.
extension Upscaler: HiresUpscaling {
    /// `latents` [N, C, h, w] → [N, C, `height`, `width`] through pixels.
    public func upscale(_ latents: Tensor, height: Int, width: Int, pipeline: Pipeline) throws -> Tensor {
        let target = (height: height * pipeline.latentScale, width: width * pipeline.latentScale)
        let decoded = pipeline.decode(latents)
        let (sourceHeight, sourceWidth) = (latents.shape[2] * pipeline.latentScale, latents.shape[3] * pipeline.latentScale)
        let encoded = try decoded.map { rgb -> Tensor in
            let unit = Pipeline.pixels(rgb: rgb, width: sourceWidth, height: sourceHeight).map { ($0 + 1) / 2 }
            let factor = Swift.max(Double(target.height) / Double(sourceHeight), Double(target.width) / Double(sourceWidth))
            var large = upscale(unit, by: factor)
            if large.shape[2] != target.height || large.shape[3] != target.width {
                guard large.shape[2] >= target.height, large.shape[3] >= target.width else {
                    throw UpscalerError(
                        "hires fix", "the upscaler made \(large.shape[3])x\(large.shape[2]), less than \(target.width)x\(target.height)")
                }
                large = large.resizedByArea(height: target.height, width: target.width)
            }
            // 8-bit pixels in [-1, 1], as the VAE encoder takes an image.
            let quantised = large.map { (Swift.min(Swift.max($0, 0), 1) * 255).rounded() / 255 * 2 - 1 }
            return pipeline.vae.encode(quantised).mean.scaled(by: Float(pipeline.vae.config.scalingFactor))
        }
        return Tensor.concat(encoded, axis: 0)
    }
}
