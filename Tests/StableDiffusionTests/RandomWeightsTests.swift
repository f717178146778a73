import Foundation
import StableDiffusion
import Tensors
import Testing

/// Every tensor name and shape of a model, for comparing two models' layouts.
func layout(_ tensors: [String: Tensor]) -> [String: [Int]] { tensors.mapValues(\.shape) }

@Test(arguments: ["tiny-sd1", "tiny-sd2"])
func randomWeightsHaveDiffusersLayout(_ name: String) throws {
    // Random weights for a fixture model's configs must name and shape every tensor as
    // diffusers and transformers do: the same set the real checkpoint has.
    let real = try NetworkFixtures.model(name)
    let random = ModelWeights.random(unet: real.unetConfig, vae: real.vaeConfig, textEncoder: real.textEncoderConfig)
    #expect(layout(random.unet) == layout(real.unet))
    #expect(layout(random.vae) == layout(real.vae))
    #expect(layout(random.textEncoder) == layout(real.textEncoder))
    _ = try Pipeline(weights: random)
}
