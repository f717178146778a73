import Imaging
import StableDiffusion

/// The finishing steps of a request made ready: an init image of another size fitted by the resize mode, and the
/// hires pass with its own prompts, steps, sampler and upscaler.
extension PreparedGeneration {
    /// `source` (and its `mask`) fitted to `width` × `height` as the web UI's resize `mode` does; mode 3 keeps the image
    /// as it is and returns the latent mode that resizes its latents (the web UI's bilinear).
    static func fitted(_ source: PNGImage, mask: PNGImage?, width: Int, height: Int, mode: ResizeMode) throws -> (
        source: PNGImage, mask: PNGImage?, latentResize: LatentUpscaleMode?
    ) {
        let fit: ImageFit
        switch mode {
        case .latentUpscale:
            guard mask == nil else {
                throw GenerationError("resize mode latent_upscale resizes latents, not the mask: inpaint with resize mode 0, 1 or 2")
            }
            return (source, nil, .bilinear)
        case .justResize: fit = .stretch
        case .cropAndResize: fit = .crop
        case .resizeAndFill: fit = .fill
        }
        return (try source.fitted(width: width, height: height, fit: fit), try mask?.fitted(width: width, height: height, fit: fit), nil)
    }

    /// The second pass `spec` asks for after a first pass of `width` × `height`: the first pass's conditioning where the
    /// prompts and steps are the same, else the hires prompts encoded (with a schedule for the hires steps when they
    /// use prompt editing or `AND`). `<lora:…>` tags in a hires prompt are dropped: the weights carry the first prompt's.
    static func hiresPass(
        _ spec: GenerationRequest.Hires, request: GenerationRequest, width: Int, height: Int, encoder: Pipeline,
        upscalerModel: (any HiresUpscaling)?, first: (conditional: TextConditioning, unconditional: TextConditioning, schedule: ConditioningSchedule?)
    ) throws -> HiresPass {
        let upscaler: any HiresUpscaling
        switch spec.effectiveUpscaler {
        case .latent(let mode): upscaler = mode
        case .model(let name):
            guard let upscalerModel else {
                throw GenerationError(
                    "hires upscaler \"\(name)\" is not a latent mode and no upscaler model of that name is loaded here; latent modes: "
                        + LatentUpscaleMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            upscaler = upscalerModel
        }
        let target = spec.target(width: width, height: height)
        let steps = spec.steps ?? request.steps
        let sampler: SamplerName
        do { sampler = try SamplerName(parsing: spec.sampler ?? request.sampler) } catch { throw GenerationError("hires sampler: \(error)") }
        var pass = HiresPass(
            upscaled: target.upscaled, size: target.final, upscaler: upscaler, steps: steps, strength: spec.effectiveDenoise, sampler: sampler,
            conditional: first.conditional, unconditional: first.unconditional, schedule: first.schedule)
        let positive = spec.prompt ?? request.prompt
        let negative = spec.negativePrompt ?? request.negativePrompt
        guard positive != request.prompt || negative != request.negativePrompt || (first.schedule != nil && steps != request.steps) else {
            return pass
        }
        let prompt: String
        do { prompt = try ComposablePrompt.extractingLoRAs(positive).text } catch { throw GenerationError("hires prompt: \(error)") }
        let parts = ComposablePrompt.parts(prompt)
        let edited =
            parts.count > 1 || parts.first?.weight != 1 || PromptSchedule.schedule(prompt, steps: steps).count > 1
            || PromptSchedule.schedule(negative, steps: steps).count > 1
        pass.schedule = edited ? try encoder.encodeSchedule(prompt, negative: negative, steps: steps, clipSkip: request.effectiveClipSkip) : nil
        (pass.conditional, pass.unconditional) = try encoder.encodePrompts(prompt, negative: negative, clipSkip: request.effectiveClipSkip)
        return pass
    }
}
