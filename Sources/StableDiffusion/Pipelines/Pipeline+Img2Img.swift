import Tensors

/// img2img: the sampling loop starts from the init image's latents, noised to the level `strength` of the way
/// up the schedule.
extension Pipeline {
    /// The latents and the first step of an img2img run: `image` encoded with a posterior sample per image of the
    /// batch, then noised to step `firstStep(steps:strength:)`, as diffusers' StableDiffusionImg2ImgPipeline.
    func img2imgStart(_ image: Tensor, strength: Double, settings: Settings, scheduler: any Scheduler, noise: BatchNoise) throws -> (
        latents: Tensor, start: Int
    ) {
        guard strength > 0 && strength <= 1 else { throw SamplingError("strength must be in (0, 1], got \(strength)") }
        guard image.shape == [1, 3, settings.height, settings.width] else {
            throw SamplingError("init image is \(Self.sizeText(image)) but the render is \(settings.width)x\(settings.height)")
        }
        let clean = encodeSampled(image, generators: &noise.generators)
        let start = Self.firstStep(steps: settings.steps, strength: strength) * scheduler.order
        guard start < scheduler.timesteps.count else {
            throw SamplingError("strength \(strength) leaves no steps to run; raise it or the step count")
        }
        return (scheduler.addNoise(clean, noise: noise.next(), index: start), start)
    }

    /// Encodes pixels [1, 3, H, W] once per image of the batch, each with a posterior
    /// sample from that image's generator, scaled for the UNet.
    func encodeSampled(_ pixels: Tensor, generators: inout [any NoiseGenerator]) -> Tensor {
        let posterior = vae.encode(pixels)
        let count = posterior.mean.count
        let encoded = generators.indices.map { index in
            vae.sample(
                mean: posterior.mean, logVariance: posterior.logVariance,
                noise: Tensor(shape: posterior.mean.shape, values: generators[index].randn(count)))
        }
        return Tensor.concat(encoded, axis: 0).scaled(by: Float(vae.config.scalingFactor))
    }

    /// The first step img2img and inpainting run for `strength`: diffusers' `get_timesteps`, whose
    /// `int(steps * strength)` is computed in double precision (in Float, 50 × 0.58 would keep 29 steps, not 28).
    public static func firstStep(steps: Int, strength: Double) -> Int {
        let kept = min(Int(Double(steps) * strength), steps)
        return max(steps - kept, 0)
    }

    /// Encodes pixels [1, 3, H, W] once, with a posterior sample from the first image's generator, and repeats the
    /// latents over the batch, as diffusers' inpainting pipeline does (`_encode_vae_image` on one image).
    func encodeShared(_ pixels: Tensor, generators: inout [any NoiseGenerator]) -> Tensor {
        var first = [generators[0]]
        let encoded = encodeSampled(pixels, generators: &first)
        generators[0] = first[0]
        return Tensor.concat(Array(repeating: encoded, count: generators.count), axis: 0)
    }
}
