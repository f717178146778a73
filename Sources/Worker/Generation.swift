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

/// The pixels and networks a `GenerationRequest`'s input references stand for, read by whoever holds them
/// (`farm render` from files, the worker from the task's stored images and its models folder).
public struct GenerationInputs {
    /// img2img / inpainting / outpainting source (the request's `initImage`).
    public var initImage: PNGImage?
    /// Inpainting mask, white = repaint (the request's `mask`).
    public var mask: PNGImage?
    /// The request's ControlNets, loaded, with their control images and scales, in order.
    public var controls: [(net: ControlNet, image: PNGImage, scale: Double)] = []
    /// The SDXL refiner the request names (its `refiner`), loaded; it denoises after the request's `refinerSwitch`.
    public var refiner: Pipeline?
    /// The LoRAs the pipeline was patched with (`ResolvedLoRA.patch`), for the `parameters` text's `Lora hashes`.
    public var loras: [ResolvedLoRA] = []
    /// Where the prompts' embeddings are found by name (`--embeddings-dir`); nil: none.
    public var embeddingsFolder: URL?
    /// The pixel upscaler model a hires request names (`HiresUpscaler.model`), loaded by whoever has upscaler models;
    /// nil: none (latent upscalers need none; a model name without one is refused).
    public var hiresUpscaler: (any HiresUpscaling)?

    /// Inputs for a request.
    public init(
        initImage: PNGImage? = nil, mask: PNGImage? = nil, controls: [(net: ControlNet, image: PNGImage, scale: Double)] = [],
        refiner: Pipeline? = nil
    ) {
        self.initImage = initImage
        self.mask = mask
        self.controls = controls
        self.refiner = refiner
    }
}

/// A request made ready for the pipeline: canvas, masks and control images as tensors; what `farm render` and
/// the worker both run, so that the same request gives the same image and the same `parameters` text.
public struct PreparedGeneration {
    /// The request, its size resolved to the render size.
    public let request: GenerationRequest
    /// The render size (hires fix: the first pass's).
    public let width: Int, height: Int
    /// The size of the images made: the render size, or hires fix's second pass's.
    public var outputSize: PixelSize { hires?.size ?? PixelSize(width: width, height: height) }
    let source: PNGImage?
    let pixels: Tensor?
    let mask: Tensor?
    let pasteMask: PNGImage?
    let controls: [Pipeline.Control]
    let strength: Double
    /// Resize mode 3: the init image is encoded at its own size and its latents resized to the render's.
    let latentResize: LatentUpscaleMode?
    /// Hires fix's second pass; nil without hires fix.
    let hires: HiresPass?
    let conditional: TextConditioning, unconditional: TextConditioning
    /// Prompt editing or `AND`: the conditioning per stretch of steps; nil for a prompt without either.
    let schedule: ConditioningSchedule?
    /// The LoRA and embedding files' short hashes for the `parameters` text.
    let hashes: AddOnHashes
    /// The refiner with its own encodings of the prompts (it has only the second text encoder), and the switch.
    let refiner: (pipeline: Pipeline, conditional: TextConditioning, unconditional: TextConditioning, switchAt: Double)?

    /// Checks and converts `request` with its `inputs` for `pipeline`. Outpainting renders on the extended canvas,
    /// whatever size the request names.
    public init(_ request: GenerationRequest, inputs: GenerationInputs, pipeline: Pipeline) throws {
        var source = inputs.initImage?.rgb()
        var mask = inputs.mask?.mask()
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
        }
        let native = pipeline.nativeSize
        let outpainting = request.outpaint != nil
        let width = (outpainting ? nil : request.width) ?? source?.width ?? native.width
        let height = (outpainting ? nil : request.height) ?? source?.height ?? native.height
        self.width = width
        self.height = height
        var resolved = request
        (resolved.width, resolved.height) = (width, height)
        self.request = resolved
        try pipeline.validate(try resolved.settings(width: width, height: height))
        if let mask, let source, mask.width != source.width || mask.height != source.height {
            throw GenerationError("the mask is \(mask.width)x\(mask.height) but the image is \(source.width)x\(source.height)")
        }
        var latentResize: LatentUpscaleMode?
        if let original = source, original.width != width || original.height != height {
            (source, mask, latentResize) = try Self.fitted(original, mask: mask, width: width, height: height, mode: request.effectiveResizeMode)
        }
        self.latentResize = latentResize
        if let mask, request.outpaint == nil, request.effectiveMaskBlur > 0 {
            pasteMask = mask.blurred(sigma: request.effectiveMaskBlur)
        }
        if (inputs.initImage != nil) != (request.initImage != nil) || (inputs.mask != nil) != (request.mask != nil) {
            throw GenerationError("the inputs do not match the request's init image and mask")
        }
        if inputs.controls.count != request.controlnets.count {
            throw GenerationError("the request names \(request.controlnets.count) ControlNets but \(inputs.controls.count) were loaded")
        }
        controls = try inputs.controls.map { control in
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
        strength = request.effectiveStrength
        // `<lora:…>` tags were applied to the weights (`AddOnFolders.loras`); the text is encoded without them.
        let prompt: String
        do { prompt = try ComposablePrompt.extractingLoRAs(request.prompt).text } catch { throw GenerationError("prompt: \(error)") }
        let texts = [prompt, request.negativePrompt]
        let encoder = try inputs.embeddingsFolder.map { try Self.embedded(pipeline, $0, texts) } ?? pipeline
        hashes = AddOnHashing.hashes(loras: inputs.loras, embeddings: encoder.embeddings)
        let parts = ComposablePrompt.parts(prompt)
        let edited =
            parts.count > 1 || parts.first?.weight != 1 || PromptSchedule.schedule(prompt, steps: request.steps).count > 1
            || PromptSchedule.schedule(request.negativePrompt, steps: request.steps).count > 1
        schedule =
            edited
            ? try encoder.encodeSchedule(prompt, negative: request.negativePrompt, steps: request.steps, clipSkip: request.effectiveClipSkip)
            : nil
        (conditional, unconditional) = try encoder.encodePrompts(prompt, negative: request.negativePrompt, clipSkip: request.effectiveClipSkip)
        let plainText = source == nil && inputs.controls.isEmpty
        if let spec = request.hires {
            guard plainText && inputs.refiner == nil else {
                throw GenerationError("hires fix follows text-to-image: it does not take an init image, ControlNets or a refiner")
            }
            hires = try Self.hiresPass(
                spec, request: request, width: width, height: height, encoder: encoder, upscalerModel: inputs.hiresUpscaler,
                first: (conditional, unconditional, schedule))
        } else {
            hires = nil
        }
        refiner = try inputs.refiner.map { refiner in
            guard refiner.unet.config.isXL else { throw GenerationError("the refiner must be an SDXL refiner (or base) model") }
            guard pipeline.unet.config.isXL else { throw GenerationError("a refiner needs an SDXL base model") }
            guard plainText else {
                throw GenerationError("the refiner hand-off runs after text-to-image; it does not take an init image, mask or ControlNet")
            }
            guard !edited else { throw GenerationError("prompt editing and AND do not run with a refiner yet; leave one of them out") }
            let refinerEncoder = try inputs.embeddingsFolder.map { try Self.embedded(refiner, $0, texts) } ?? refiner
            let (positive, negative) = try refinerEncoder.encodePrompts(
                prompt, negative: request.negativePrompt, clipSkip: request.effectiveClipSkip)
            return (refiner, positive, negative, request.effectiveRefinerSwitch)
        }
    }

    /// `pipeline` reading the embeddings of `folder` that `texts` name; a bad file is a `GenerationError` naming it.
    static func embedded(_ pipeline: Pipeline, _ folder: URL, _ texts: [String]) throws -> Pipeline {
        do { return try pipeline.usingEmbeddings(from: [folder], for: texts) } catch let error as AddOnFileError {
            throw GenerationError(error.description)
        }
    }

    /// Runs the sampler for `batch` images from seed `seed` (default: the request's) and returns the final latents.
    /// `onStep` sees the latents after every step (for previews).
    public func sample(
        _ pipeline: Pipeline, seed: UInt64? = nil, batch: Int = 1, onStep: ((Int, Tensor) -> Void)? = nil,
        progress: (Int, Int) -> Bool
    ) throws -> Tensor {
        let settings = try request.settings(width: width, height: height, seed: seed, batch: batch)
        if let hires {
            return try pipeline.sampleHires(
                conditional: conditional, unconditional: unconditional, settings: settings, schedule: schedule, hires: hires, onStep: onStep,
                progress: progress)
        }
        if let refiner {
            return try pipeline.sample(
                conditional: conditional, unconditional: unconditional, refiner: refiner.pipeline,
                refinerConditional: refiner.conditional, refinerUnconditional: refiner.unconditional, switchAt: refiner.switchAt,
                settings: settings, onStep: onStep, progress: progress)
        }
        return try pipeline.sample(
            conditional: conditional, unconditional: unconditional, settings: settings,
            image: pixels, strength: strength, mask: mask, controls: controls, schedule: schedule, initResize: latentResize, onStep: onStep,
            progress: progress)
    }

    /// Decodes latents sampled from seed `seed` (default: the request's) to PNG images with the request's
    /// `parameters` text (whose `Size` is the first pass's, as the web UI writes it with hires fix); inpainting and
    /// outpainting paste the result over the original through the soft mask.
    public func images(_ pipeline: Pipeline, latents: Tensor, seed: UInt64? = nil, tiledVAE: TileStatistics? = nil) throws -> [PNGImage] {
        var request = request
        request.seed = seed ?? request.seed
        // The refiner's latents are decoded by its own VAE, as diffusers' refiner pipeline does.
        return try (refiner?.pipeline ?? pipeline).decode(latents, tiled: tiledVAE).enumerated().map { index, rgb in
            let text = request.parametersText(width: width, height: height, index: index, hashes: hashes)
            let image = try PNGImage(width: outputSize.width, height: outputSize.height, format: .rgb, pixels: rgb, text: [("parameters", text)])
            guard let pasteMask, let source else { return image }
            return try source.composited(under: image, mask: pasteMask)
        }
    }
}
