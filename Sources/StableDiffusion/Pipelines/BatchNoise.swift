import Tensors

/// The noise of one batch: image i draws from its own generator, seeded `seed + i` (as the web UIs and
/// diffusers with a list of generators do), so an image does not depend on the batch it was rendered in.
final class BatchNoise {
    /// One generator per image of the batch.
    var generators: [any NoiseGenerator]
    /// The shape of one image's latents, [C, H, W].
    let shape: [Int]

    /// Generators for `settings`' batch, seeds and noise source.
    init(settings: Pipeline.Settings, shape: [Int]) {
        generators = (0..<settings.batch).map { settings.noise.generator(seed: settings.seed &+ UInt64($0)) }
        self.shape = shape
    }

    /// The next standard-normal latents of the whole batch, [batch, C, H, W].
    func next() -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(shape: [generators.count] + shape, values: generators.indices.flatMap { generators[$0].randn(count) })
    }
}
