import FarmModel
import Foundation
import Imaging
import StableDiffusion

/// A task's `upscaler` step: the finished image enlarged by an upscaler model of the models folder, as the web UI's
/// extras tab does after a render, and the `parameters` text extended as the web UI writes it (`Postprocess upscale
/// by`, `Postprocess upscaler`).
extension DiffusionRenderer {
    /// `image` enlarged by the task's upscaler; `image` itself when the task names none.
    func upscaled(_ image: PNGImage, parameters: TaskParameters) throws -> PNGImage {
        guard let name = parameters.upscaler else { return image }
        let model = try upscaler(name)
        guard model.channels == 3 else {
            throw RenderError(kind: .input, message: "upscaler \(name) takes \(model.channels) channels; only RGB (3-channel) models are supported")
        }
        let factor = parameters.upscaleBy ?? Double(model.scale)
        let source = try image.rgb()
        let upscaled = model.upscale(rgb: source.pixels, width: source.width, height: source.height, by: factor)
        let text = source.textValue("parameters").map {
            "\($0), Postprocess upscale by: \(String(format: "%g", factor)), Postprocess upscaler: \(name)"
        }
        return try PNGImage(
            width: upscaled.width, height: upscaled.height, format: .rgb, pixels: upscaled.rgb, text: text.map { [("parameters", $0)] } ?? [])
    }
}
