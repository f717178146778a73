import ArgumentParser
import Generation

/// The finishing flags (few-step shortcuts, variation seeds, resize mode, hires fix) into a request, and back out as
/// spec overrides.
extension GenerationOptions {
    /// Sets `request`'s variation, resize-mode and hires fields from these flags; a malformed value names its flag.
    func finishing(into request: inout GenerationRequest) throws {
        (request.tokenMergingRatio, request.deepCacheInterval, request.deepCacheBranch) = (tome, deepcache, deepcacheBranch)
        request.subseed = subseed
        request.subseedStrength = subseedStrength
        request.seedResizeFrom = try seedResizeFrom.map { text in
            guard let size = PixelSize(parsing: text) else { throw ValidationError("--seed-resize-from must be W,H (two pixel counts), got \(text)") }
            return size
        }
        do { request.resizeMode = try resizeMode.map(ResizeMode.init(parsing:)) } catch let error as InvalidGenerationRequest {
            throw ValidationError(error.flagged)
        }
        let hiresGiven =
            hiresScale != nil || hiresWidth != nil || hiresHeight != nil || hiresUpscaler != nil || hiresSteps != nil || hiresDenoise != nil
            || hiresPrompt != nil || hiresNegative != nil || hiresSampler != nil
        guard hiresGiven else { return }
        var hires = GenerationRequest.Hires(scale: hiresScale, width: hiresWidth, height: hiresHeight)
        (hires.upscaler, hires.steps, hires.denoise) = (hiresUpscaler, hiresSteps, hiresDenoise)
        (hires.prompt, hires.negativePrompt, hires.sampler) = (hiresPrompt, hiresNegative, hiresSampler)
        request.hires = hires
    }

    /// The finishing flags given, as spec field overrides (`farm submit`).
    var finishingOverrides: [String: String] {
        var fields: [String: String] = [:]
        fields["token_merging_ratio"] = tome.map { String($0) }
        fields["deepcache_interval"] = deepcache.map(String.init)
        fields["deepcache_branch"] = deepcacheBranch.map(String.init)
        fields["subseed"] = subseed.map(String.init)
        fields["subseed_strength"] = subseedStrength.map { String($0) }
        fields["seed_resize_from"] = seedResizeFrom
        fields["resize_mode"] = resizeMode
        fields["hires_scale"] = hiresScale.map { String($0) }
        fields["hires_width"] = hiresWidth.map(String.init)
        fields["hires_height"] = hiresHeight.map(String.init)
        fields["hires_upscaler"] = hiresUpscaler
        fields["hires_steps"] = hiresSteps.map(String.init)
        fields["hires_denoise"] = hiresDenoise.map { String($0) }
        fields["hires_prompt"] = hiresPrompt
        fields["hires_negative_prompt"] = hiresNegative
        fields["hires_sampler"] = hiresSampler
        return fields
    }
}
