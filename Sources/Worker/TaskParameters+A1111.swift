import FarmModel
import StableDiffusion

extension TaskParameters {
    /// The web UI's `parameters` text for this task's image of `width` × `height`, written by the engine's one
    /// writer (`A1111Parameters`) with the same fields `farm render` fills, so both give the same text.
    public func a1111Parameters(width: Int, height: Int) -> String {
        var parameters = A1111Parameters(
            prompt: prompt, steps: steps, sampler: sampler, cfg: cfgScale, seed: seed,
            width: width, height: height, model: model)
        parameters.negative = negativePrompt
        parameters.clipSkip = clipSkip ?? 1
        if initImage != nil && outpaint == nil { parameters.denoisingStrength = strength ?? GenerationRequest.defaultStrength }
        if mask != nil { parameters.maskBlur = maskBlur ?? GenerationRequest.defaultMaskBlur }
        return parameters.text
    }
}
