import Foundation
import Imaging
import StableDiffusion
import Tensors

/// A bad render request (sizes that do not match, a mask without an image…); the message names the input.
public struct GenerationError: Error, CustomStringConvertible {
    /// What is wrong.
    public var message: String
    /// Makes an error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One render's inputs besides the model, shared by `farm render` and the worker so that
/// both draw the same picture: txt2img, img2img, inpainting (with mask blur), outpainting
/// and ControlNet.
public struct GenerationRequest {
    /// What to draw (web-UI syntax).
    public var prompt: String
    /// What to avoid.
    public var negative = ""
    /// Size, steps, guidance, sampler, seed, batch, noise source (0 × 0 size: the init image's, else the model's native size).
    public var settings = Pipeline.Settings()
    /// 1 = last text-encoder layer, 2 = penultimate.
    public var clipSkip = 1
    /// img2img / inpainting / outpainting source.
    public var initImage: PNGImage?
    /// Inpainting mask, white = repaint.
    public var mask: PNGImage?
    /// Blur (pixels) of the mask that pastes the result over the original.
    public var maskBlur: Double = GenerationRequest.defaultMaskBlur
    /// How much of the init image is repainted.
    public var strength: Double = GenerationRequest.defaultStrength
    /// The mask blur when none is given, in pixels (the web UI's default).
    public static let defaultMaskBlur: Double = 4
    /// The img2img strength when none is given (the web UI's default denoising strength).
    public static let defaultStrength = 0.75
    /// Outpainting: pixels added on the left, right, top and bottom.
    public var outpaint: (left: Int, right: Int, top: Int, bottom: Int)?
    /// ControlNets with their control images and scales.
    public var controls: [(net: ControlNet, image: PNGImage, scale: Double)] = []

    /// A text-to-image request.
    public init(prompt: String) {
        self.prompt = prompt
    }
}

/// A request made ready for the pipeline: canvas, masks and control images as tensors.
public struct PreparedGeneration {
    /// The render size.
    public let width: Int, height: Int
    let source: PNGImage?
    let pixels: Tensor?
    let mask: Tensor?
    let pasteMask: PNGImage?
    let controls: [Pipeline.Control]
    let strength: Double
    let conditional: Tensor, unconditional: Tensor

    /// Checks and converts `request` for `pipeline`.
    public init(_ request: GenerationRequest, pipeline: Pipeline) throws {
        var source = request.initImage?.rgb()
        var mask = request.mask?.mask()
        var pasteMask: PNGImage?
        if mask != nil && source == nil { throw GenerationError("a mask needs an init image") }
        if let extents = request.outpaint {
            guard let original = source else { throw GenerationError("outpainting needs an init image") }
            guard mask == nil else { throw GenerationError("use a mask or outpainting, not both") }
            // Round each side up so that the canvas stays on the UNet's grid.
            let grid = pipeline.latentScale * (1 << (pipeline.unet.config.blockOutChannels.count - 1))
            func up(_ value: Int, _ total: Int) -> Int { value == 0 ? 0 : value + (grid - total % grid) % grid }
            let right = up(extents.right, original.width + extents.left + extents.right)
            let bottom = up(extents.bottom, original.height + extents.top + extents.bottom)
            let (canvas, newArea) = try original.extended(left: extents.left, right: right, top: extents.top, bottom: bottom)
            // Repaint a band of the original too, and paste back with a soft seam inside that band.
            let overlap = max(8, grid)
            source = canvas
            mask = newArea.dilated(by: overlap)
            pasteMask = newArea.dilated(by: overlap / 2).blurred(sigma: Double(overlap) / 6)
        } else if let mask, request.maskBlur > 0 {
            pasteMask = mask.blurred(sigma: request.maskBlur)
        }
        let native = pipeline.nativeSize
        let width = request.settings.width > 0 ? request.settings.width : source?.width ?? native.width
        let height = request.settings.height > 0 ? request.settings.height : source?.height ?? native.height
        self.width = width
        self.height = height
        var check = request.settings
        check.width = width
        check.height = height
        try pipeline.validate(check)
        if let source, source.width != width || source.height != height {
            throw GenerationError(
                "the init image is \(source.width)x\(source.height) but the render is \(width)x\(height); resize it or leave the size out")
        }
        if let mask, let source, mask.width != source.width || mask.height != source.height {
            throw GenerationError("the mask is \(mask.width)x\(mask.height) but the image is \(source.width)x\(source.height)")
        }
        controls = try request.controls.map { control in
            let image = control.image.rgb()
            guard image.width == width && image.height == height else {
                throw GenerationError("a control image is \(image.width)x\(image.height); it must be \(width)x\(height)")
            }
            return Pipeline.Control(
                net: control.net,
                image: Pipeline.pixels(rgb: image.pixels, width: width, height: height).map { $0 / 2 + 0.5 },
                scale: Float(control.scale))
        }
        self.source = source
        self.pasteMask = pasteMask
        pixels = source.map { Pipeline.pixels(rgb: $0.pixels, width: $0.width, height: $0.height) }
        self.mask = mask.map { Tensor(shape: [1, 1, $0.height, $0.width], values: $0.pixels.map { Float($0) / 255 }) }
        strength = request.outpaint != nil ? 1 : request.strength
        (conditional, unconditional) = try pipeline.encodePrompts(request.prompt, negative: request.negative, clipSkip: request.clipSkip)
    }

    /// Runs the sampler for `settings` (its size is replaced by the prepared one) and returns the final latents.
    /// `onStep` sees the latents after every step (for previews).
    public func sample(
        _ pipeline: Pipeline, settings: Pipeline.Settings, onStep: ((Int, Tensor) -> Void)? = nil,
        progress: (Int, Int) -> Bool
    ) throws -> Tensor {
        var settings = settings
        settings.width = width
        settings.height = height
        return try pipeline.sample(
            conditional: conditional, unconditional: unconditional, settings: settings,
            image: pixels, strength: strength, mask: mask, controls: controls, onStep: onStep,
            progress: progress)
    }

    /// Decodes latents to PNG images with `text(index)` as their `parameters` chunk; inpainting
    /// and outpainting paste the result over the original through the soft mask.
    public func images(_ pipeline: Pipeline, latents: Tensor, tiledVAE: TileStatistics? = nil, text: (Int) -> String) throws -> [PNGImage] {
        try pipeline.decode(latents, tiled: tiledVAE).enumerated().map { index, rgb in
            let image = try PNGImage(width: width, height: height, format: .rgb, pixels: rgb, text: [("parameters", text(index))])
            guard let pasteMask, let source else { return image }
            return try source.composited(under: image, mask: pasteMask)
        }
    }
}
