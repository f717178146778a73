import Foundation
import StableDiffusion
import Tensors
import Testing

/// One diffusers/transformers reference run from Fixtures/networks.json (Tools/make_network_fixtures.py).
struct NetworkCase: Sendable, CustomTestStringConvertible {
    struct Reference: Decodable, Sendable {
        let shape: [Int]
        let offset: Int
    }
    let name: String
    let model: String
    let timestep: Float
    let scale: Float
    let inputs: [String: Reference]
    let outputs: [String: Reference]
    var testDescription: String { name }
}

enum NetworkFixtures {
    /// One entry of networks.json's `cases`.
    private struct Entry: Decodable {
        struct Params: Decodable {
            let model: String
            let timestep: Float?
            let scale: Float?
        }
        let name: String
        let params: Params
        let inputs: [String: NetworkCase.Reference]
        let outputs: [String: NetworkCase.Reference]
    }

    /// The cases of Fixtures/networks.json; throws when it is missing, does not decode or holds none.
    static func cases() throws -> [NetworkCase] {
        try fixtureCases("networks.json", as: Entry.self).map {
            NetworkCase(
                name: $0.name, model: $0.params.model, timestep: $0.params.timestep ?? 0, scale: $0.params.scale ?? 1,
                inputs: $0.inputs, outputs: $0.outputs)
        }
    }

    /// Fixtures/networks.bin (little-endian float32), read once.
    static let blob: Result<[Float], any Error> = Result {
        try fixtureData("networks.bin").withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The tensor `reference` points at in the blob; throws when the blob cannot be read.
    static func tensor(_ reference: NetworkCase.Reference) throws -> Tensor {
        let count = reference.shape.reduce(1, *)
        return Tensor(shape: reference.shape, values: Array(try blob.get()[reference.offset..<reference.offset + count]))
    }

    nonisolated(unsafe) static var models: [String: ModelWeights] = [:]
    static let lock = NSLock()

    static func model(_ name: String) throws -> ModelWeights {
        try lock.withLock {
            if let model = models[name] { return model }
            let model = try ModelWeights.load(modelFixtures.appendingPathComponent(name))
            models[name] = model
            return model
        }
    }
}

/// Largest error relative to the output's scale: |ours − diffusers| / max|diffusers|.
func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    actual.maxAbsDifference(expected) / max(expected.absMax(), 1e-6)
}

/// Runs the networks of `fixture` on its inputs, on `device` (nil: the CPU), and returns their outputs by name.
func networkOutputs(_ fixture: NetworkCase, device: VulkanDevice?) throws -> [String: Tensor] {
    let model = try NetworkFixtures.model(fixture.model)
    let input = try fixture.inputs.mapValues(NetworkFixtures.tensor)
    var actual: [String: Tensor] = [:]
    if fixture.name.hasSuffix("text_encoder_weighted") {
        var encoder = try TextEncoder(config: model.textEncoderConfig, weights: model.textEncoder)
        encoder.device = device
        let ids = input["ids"]!
        let weights = input["weights"]!
        let rows = (0..<ids.shape[0]).map { row in (0..<ids.shape[1]).map { Int(ids[row, $0]) } }
        let weightRows = (0..<weights.shape[0]).map { row in (0..<weights.shape[1]).map { weights[row, $0] } }
        actual["weighted"] = encoder.encode(chunks: rows, weights: weightRows)
    } else if fixture.name.hasSuffix("text_encoder") {
        var encoder = try TextEncoder(config: model.textEncoderConfig, weights: model.textEncoder)
        encoder.device = device
        let ids = input["ids"]!
        let rows = (0..<ids.shape[0]).map { row in (0..<ids.shape[1]).map { Int(ids[row, $0]) } }
        actual["last"] = encoder(rows)
        actual["penultimate"] = encoder(rows, clipSkip: 2)
    } else if fixture.name.hasSuffix("/unet_inpaint") {
        var unet = try UNet.load(modelFixtures.appendingPathComponent("tiny-inpaint-unet"))
        unet.device = device
        #expect(unet.config.inChannels == 9)
        actual["noise"] = unet(input["sample"]!, timestep: fixture.timestep, context: input["context"]!)
    } else if fixture.name.contains("/unet") {
        var unet = try UNet(config: model.unetConfig, weights: model.unet)
        unet.device = device
        actual["noise"] = unet(input["sample"]!, timestep: fixture.timestep, context: input["context"]!)
    } else if fixture.name.hasSuffix("vae_tiled_encode") {
        var vae = try VAE(config: model.vaeConfig, weights: model.vae)
        vae.device = device
        let posterior = vae.encodeTiled(input["image"]!, tile: 16)
        actual["mean"] = posterior.mean
        actual["logvar"] = posterior.logVariance
    } else if fixture.name.hasSuffix("vae_tiled") {
        var vae = try VAE(config: model.vaeConfig, weights: model.vae)
        vae.device = device
        actual["tiled"] = vae.decodeTiled(input["latents"]!, tile: 8, statistics: .perTile)
        actual["untiled"] = vae.decode(input["latents"]!)
    } else if fixture.name.hasSuffix("vae") {
        var vae = try VAE(config: model.vaeConfig, weights: model.vae)
        vae.device = device
        actual["decoded"] = vae.decode(input["latents"]!)
        let posterior = vae.encode(input["image"]!)
        actual["mean"] = posterior.mean
        actual["logvar"] = posterior.logVariance
    } else if fixture.name.hasSuffix("controlnet") {
        var controlnet = try ControlNet.load(modelFixtures.appendingPathComponent("tiny-controlnet"))
        controlnet.device = device
        var unet = try UNet(config: model.unetConfig, weights: model.unet)
        unet.device = device
        let residuals = controlnet(
            input["sample"]!, timestep: fixture.timestep, context: input["context"]!,
            control: input["control"]!, scale: fixture.scale)
        for (index, tensor) in residuals.down.enumerated() { actual["down\(index)"] = tensor }
        actual["mid"] = residuals.middle
        actual["noise"] = unet(input["sample"]!, timestep: fixture.timestep, context: input["context"]!, control: residuals)
    }
    return actual
}

@Test(arguments: try NetworkFixtures.cases())
func networkMatchesDiffusers(_ fixture: NetworkCase) throws {
    let expected = try fixture.outputs.mapValues(NetworkFixtures.tensor)
    let actual = try networkOutputs(fixture, device: nil)
    #expect(Set(actual.keys) == Set(expected.keys))
    for (name, reference) in expected {
        guard let ours = actual[name] else { continue }
        #expect(ours.shape == reference.shape, "\(fixture.name) \(name)")
        guard ours.shape == reference.shape else { continue }
        let error = relativeError(ours, reference)
        #expect(error < 1e-5, "\(fixture.name) \(name): relative error \(error)")
    }
}
