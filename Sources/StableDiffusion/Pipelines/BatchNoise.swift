import Tensors

/// The noise of one batch: image i draws from its own generator, seeded `seed + i` (as the web UIs and
/// diffusers with a list of generators do), so an image does not depend on the batch it was rendered in.
/// The first draw is the starting noise, with any variation seed and seed resize applied (`VariationNoise`).
final class BatchNoise {
    /// One generator per image of the batch.
    var generators: [any NoiseGenerator]
    /// The shape of one image's latents, [C, H, W].
    let shape: [Int]
    /// The variation settings the first draw applies; nil once drawn.
    private var variation: VariationNoise?

    /// Generators for `settings`' batch, seeds and noise source; `latentScale` turns `seedResizeFrom` into latent cells.
    init(settings: Pipeline.Settings, shape: [Int], latentScale: Int) {
        generators = (0..<settings.batch).map { settings.noise.generator(seed: settings.seed &+ UInt64($0)) }
        self.shape = shape
        variation = VariationNoise(settings: settings, latentScale: latentScale)
    }

    /// The next standard-normal latents of the whole batch, [batch, C, H, W].
    func next() -> Tensor {
        let count = shape.reduce(1, *)
        if let variation {
            self.variation = nil
            return Tensor(
                shape: [generators.count] + shape,
                values: generators.indices.flatMap { variation.firstNoise(image: $0, generator: &generators[$0], shape: shape) })
        }
        return Tensor(shape: [generators.count] + shape, values: generators.indices.flatMap { generators[$0].randn(count) })
    }
}

extension Pipeline {
    /// The starting noise of `settings`' batch for latents of `shape` [C, H, W]: each image's first draw, with its
    /// variation seed and seed resize applied (what text-to-image scales by the initial sigma).
    public func startingNoise(settings: Settings, shape: [Int]) -> Tensor {
        BatchNoise(settings: settings, shape: shape, latentScale: latentScale).next()
    }
}
