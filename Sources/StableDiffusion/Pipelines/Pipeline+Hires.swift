import Tensors

/// How hires fix brings the first pass's latents to the second pass's size. Latent interpolation
/// (`LatentUpscaleMode`) is one; a pixel upscaler model conforms by decoding with `pipeline`, upscaling the pixels and
/// encoding them again, so that either plugs into `Pipeline.sampleHires` the same way.
public protocol HiresUpscaling {
    /// `latents` [N, C, h, w] (scaled for the UNet, as a pass returns them) at `height` × `width` latent cells.
    func upscale(_ latents: Tensor, height: Int, width: Int, pipeline: Pipeline) throws -> Tensor
}

extension LatentUpscaleMode: HiresUpscaling {
    /// Interpolates the latents (`interpolate`); the pipeline is not needed.
    public func upscale(_ latents: Tensor, height: Int, width: Int, pipeline: Pipeline) throws -> Tensor {
        interpolate(latents, height: height, width: width)
    }
}

/// The second pass of hires fix: its size, upscaler, steps, strength, sampler and text conditioning.
public struct HiresPass {
    /// The size the latents are upscaled to, in pixels.
    public var upscaled: PixelSize
    /// The second pass's size after the centred crop (the web UI's truncation when both target sides are given).
    public var size: PixelSize
    /// The upscale step.
    public var upscaler: any HiresUpscaling
    /// The second pass's schedule length, of which `strength` runs (as img2img).
    public var steps: Int
    /// How much of the upscaled picture is repainted, in (0, 1].
    public var strength: Double
    /// The second pass's sampler.
    public var sampler: SamplerName
    /// The second pass's prompt encodings.
    public var conditional: TextConditioning, unconditional: TextConditioning
    /// The second pass's prompt-editing schedule (built for `steps`); nil for a plain prompt.
    public var schedule: ConditioningSchedule?

    /// Makes a second pass.
    public init(
        upscaled: PixelSize, size: PixelSize, upscaler: any HiresUpscaling, steps: Int, strength: Double, sampler: SamplerName,
        conditional: TextConditioning, unconditional: TextConditioning, schedule: ConditioningSchedule? = nil
    ) {
        (self.upscaled, self.size, self.upscaler, self.steps, self.strength) = (upscaled, size, upscaler, steps, strength)
        (self.sampler, self.conditional, self.unconditional, self.schedule) = (sampler, conditional, unconditional, schedule)
    }
}

/// Hires fix as the AUTOMATIC1111 web UI runs it (`processing.py`, `sample_hr_pass`): text-to-image at the base size,
/// the latents upscaled (and cropped centred), then img2img on those latents at the larger size. The second pass draws
/// its noise from fresh generators of the same seeds (and variation seeds), as the web UI makes a new `ImageRNG`.
extension Pipeline {
    /// Runs both passes and returns the second pass's final latents [batch, C, H/s, W/s] at `hires.size`.
    /// `progress(step, total)` counts both passes' steps together; `onStep` sees each pass's latents.
    public func sampleHires(
        conditional: TextConditioning, unconditional: TextConditioning, settings: Settings, schedule: ConditioningSchedule? = nil,
        hires: HiresPass, onStep: ((Int, Tensor) -> Void)? = nil, progress: (Int, Int) -> Bool = { _, _ in true }
    ) throws -> Tensor {
        var second = settings
        (second.width, second.height, second.steps, second.sampler) = (hires.size.width, hires.size.height, hires.steps, hires.sampler)
        try validate(settings)
        try validate(second)
        let cells = (width: hires.upscaled.width / latentScale, height: hires.upscaled.height / latentScale)
        let final = (width: hires.size.width / latentScale, height: hires.size.height / latentScale)
        guard cells.width >= final.width, cells.height >= final.height else {
            throw SamplingError(
                "hires fix upscales to \(hires.upscaled.width)x\(hires.upscaled.height), smaller than \(hires.size.width)x\(hires.size.height)")
        }
        let firstTotal = try settings.sampler.make(config: schedulerConfig, steps: settings.steps, eta: settings.eta).timesteps.count
        let secondScheduler = try second.sampler.make(config: schedulerConfig, steps: second.steps, eta: second.eta)
        let secondTotal = secondScheduler.timesteps.count - Self.firstStep(steps: second.steps, strength: hires.strength) * secondScheduler.order
        let total = firstTotal + max(secondTotal, 0)
        let base = try sample(
            conditional: conditional, unconditional: unconditional, settings: settings, schedule: schedule, onStep: onStep,
            progress: { step, _ in progress(step, total) })
        var upscaled = try hires.upscaler.upscale(base, height: cells.height, width: cells.width, pipeline: self)
        // The web UI's truncation: the overflow is cut half before, half (rounded up) after.
        let (cropY, cropX) = (cells.height - final.height, cells.width - final.width)
        if cropY > 0 { upscaled = upscaled.slice(axis: 2, range: (cropY / 2)..<(cells.height - (cropY + 1) / 2)) }
        if cropX > 0 { upscaled = upscaled.slice(axis: 3, range: (cropX / 2)..<(cells.width - (cropX + 1) / 2)) }
        return try sample(
            conditional: hires.conditional, unconditional: hires.unconditional, settings: second, strength: hires.strength,
            schedule: hires.schedule, initLatents: upscaled, onStep: { onStep?(firstTotal + $0, $1) },
            progress: { step, _ in progress(firstTotal + step, total) })
    }
}
