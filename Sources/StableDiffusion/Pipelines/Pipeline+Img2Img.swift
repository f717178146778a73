import Tensors

/// img2img: the sampling loop starts from the init image's latents, noised to the level `strength` of the way
/// up the schedule.
extension Pipeline {
    /// The latents and the first step of an img2img run: `image` encoded with a posterior sample per image of the
    /// batch, then noised to step `firstStep(steps:strength:)`, as diffusers' StableDiffusionImg2ImgPipeline.
    /// An image of another size than the render is encoded at its own size and its latents resized with `resize`
    /// (the web UI's resize mode 3); `latents` (clean, [1 or batch, C, h, w] at the render's latent size) are used
    /// as they are, as diffusers' img2img takes 4-channel input (hires fix).
    func img2imgStart(
        _ image: Tensor?, latents given: Tensor?, resize: LatentUpscaleMode?, strength: Double, settings: Settings, scheduler: any Scheduler,
        noise: BatchNoise
    ) throws -> (latents: Tensor, start: Int) {
        guard strength > 0 && strength <= 1 else { throw SamplingError("strength must be in (0, 1], got \(strength)") }
        let cells = [settings.height / latentScale, settings.width / latentScale]
        let clean: Tensor
        if let given {
            guard Array(given.shape.dropFirst(2)) == cells, given.shape[0] == 1 || given.shape[0] == settings.batch else {
                throw SamplingError("init latents are \(given.shape) but the render's are [\(settings.batch), C, \(cells[0]), \(cells[1])]")
            }
            clean = given.shape[0] == settings.batch ? given : Tensor.concat(Array(repeating: given, count: settings.batch), axis: 0)
        } else if let image {
            let matches = image.shape == [1, 3, settings.height, settings.width]
            guard matches || resize != nil else {
                throw SamplingError("init image is \(Self.sizeText(image)) but the render is \(settings.width)x\(settings.height)")
            }
            guard image.shape[2] % latentScale == 0 && image.shape[3] % latentScale == 0 else {
                throw SamplingError(
                    "an init image resized in latent space must have sides that are multiples of \(latentScale), got \(Self.sizeText(image))")
            }
            let encoded = encodeSampled(image, generators: &noise.generators)
            clean = matches ? encoded : (resize ?? .bilinear).interpolate(encoded, height: cells[0], width: cells[1])
        } else {
            throw SamplingError("img2img needs an init image or init latents")
        }
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
