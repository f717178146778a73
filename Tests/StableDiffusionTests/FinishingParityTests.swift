import Foundation
import StableDiffusion
import Tensors
import Testing

/// One reference run from Fixtures/finishing.json (Tools/make_finishing_fixtures.py): diffusers' AutoencoderTiny,
/// or an upscaler file as spandrel loaded and ran it.
struct FinishingCase: Decodable, Sendable, CustomTestStringConvertible {
    struct Params: Decodable, Sendable {
        let model: String
        let scale: Int?
        let architecture: String?
    }
    let name: String
    let params: Params
    let inputs: [String: NetworkCase.Reference]
    let outputs: [String: NetworkCase.Reference]
    var testDescription: String { name }
}

enum FinishingFixtures {
    /// The cases of Fixtures/finishing.json whose names start with `prefix`.
    static func cases(_ prefix: String) throws -> [FinishingCase] {
        try fixtureCases("finishing.json", as: FinishingCase.self).filter { $0.name.hasPrefix(prefix) }
    }

    /// Fixtures/finishing.bin (little-endian float32), read once.
    static let blob: Result<[Float], any Error> = Result {
        try fixtureData("finishing.bin").withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// The tensor `reference` points at in the blob.
    static func tensor(_ reference: NetworkCase.Reference) throws -> Tensor {
        let count = reference.shape.reduce(1, *)
        return Tensor(shape: reference.shape, values: Array(try blob.get()[reference.offset..<reference.offset + count]))
    }

    /// The upscaler files the script saved.
    static let upscalers = modelFixtures.appendingPathComponent("upscalers")
}

/// Checks `actual` against diffusers' or spandrel's `expected` within 1e-4 of the output's scale.
private func expectParity(_ actual: Tensor, _ expected: Tensor, _ label: String) {
    #expect(actual.shape == expected.shape, "\(label): shape \(actual.shape), expected \(expected.shape)")
    guard actual.shape == expected.shape else { return }
    let error = relativeError(actual, expected)
    #expect(error < 1e-4, "\(label): relative error \(error)")
}

@Test func finishingFixturesAreComplete() throws {
    #expect(try FinishingFixtures.cases("taesd").count == 1)
    #expect(try FinishingFixtures.cases("upscale/").count == 3)
}

@Test func tinyAutoencoderMatchesDiffusers() throws {
    let fixture = try #require(try FinishingFixtures.cases("taesd").first)
    let taesd = try TinyAutoencoder.load(modelFixtures.appendingPathComponent(fixture.params.model))
    #expect(taesd.config.scalingFactor == 1 && taesd.config.latentMagnitude == 3 && taesd.config.latentShift == 0.5)
    #expect(taesd.downscaleFactor == 4)
    let latents = try FinishingFixtures.tensor(fixture.inputs["latents"]!)
    let image = try FinishingFixtures.tensor(fixture.inputs["image"]!)
    expectParity(taesd.decode(latents), try FinishingFixtures.tensor(fixture.outputs["decoded"]!), "decode")
    expectParity(taesd.encode(image), try FinishingFixtures.tensor(fixture.outputs["encoded"]!), "encode")

    // madebyollin's single files (the decoder's indices one higher) build the same network.
    let single = try TinyAutoencoder.load(modelFixtures.appendingPathComponent("tiny-taesd-single"))
    expectParity(single.decode(latents), try FinishingFixtures.tensor(fixture.outputs["decoded"]!), "single-file decode")
    expectParity(single.encode(image), try FinishingFixtures.tensor(fixture.outputs["encoded"]!), "single-file encode")
    #expect(TinyAutoencoder.isTinyAutoencoder(modelFixtures.appendingPathComponent("tiny-taesd")))
    #expect(TinyAutoencoder.isTinyAutoencoder(modelFixtures.appendingPathComponent("tiny-taesd-single")))
    #expect(!TinyAutoencoder.isTinyAutoencoder(modelFixtures.appendingPathComponent("tiny-sd1/vae")))
}

@Test func tinyAutoencoderDecoderFileAlone() throws {
    let decoder = try TinyAutoencoder.load(modelFixtures.appendingPathComponent("tiny-taesd-single/taesd_decoder.safetensors"))
    #expect(decoder.canDecode && !decoder.canEncode)
    #expect(
        TinyAutoencoder.find(forModel: nil, xl: false, folders: [modelFixtures.appendingPathComponent("tiny-taesd-single")])?
            .lastPathComponent == "taesd_decoder.safetensors")
}

@Test(arguments: try FinishingFixtures.cases("upscale/"))
func upscalerMatchesSpandrel(_ fixture: FinishingCase) throws {
    let upscaler = try Upscaler.load(FinishingFixtures.upscalers.appendingPathComponent(fixture.params.model))
    #expect(upscaler.architecture.rawValue == fixture.params.architecture)
    #expect(upscaler.scale == fixture.params.scale)
    let image = try FinishingFixtures.tensor(fixture.inputs["image"]!)
    expectParity(upscaler.upscale(image), try FinishingFixtures.tensor(fixture.outputs["upscaled"]!), fixture.name)
}

/// Tiles of 16 input pixels overlapping by 8 against the whole image at once: within 1/255 on average (in [0, 1]).
@Test(arguments: ["rrdb-x4.safetensors", "rrdb-x2.pth", "compact-x4.pth"])
func tiledUpscaleMatchesWhole(_ file: String) throws {
    let upscaler = try Upscaler.load(FinishingFixtures.upscalers.appendingPathComponent(file))
    var generator = MersenneTwister(seed: 5)
    let image = Tensor(shape: [1, 3, 37, 42], values: (0..<(3 * 37 * 42)).map { _ in Float(generator.next() >> 8) / Float(1 << 24) })
    let whole = upscaler.upscale(image)
    let tiled = upscaler.upscaleTiled(image, tile: 16, overlap: 8)
    #expect(tiled.shape == [1, 3, 37 * upscaler.scale, 42 * upscaler.scale])
    guard tiled.shape == whole.shape else { return }
    let meanError = (tiled - whole).map { abs($0) }.mean()
    #expect(meanError < 1 / 255, "\(file): mean |tiled − whole| \(meanError)")
    // A tile as large as the image is the whole image.
    #expect(upscaler.upscaleTiled(image, tile: 64).maxAbsDifference(whole) == 0)
}

@Test func upscalerRefusesOtherFiles() throws {
    #expect(throws: UpscalerError.self) {
        try Upscaler(weights: ["conv.weight": Tensor(zeros: [1, 1, 3, 3])], source: "other.safetensors")
    }
    #expect(throws: UpscalerError.self) { try Upscaler.load(URL(fileURLWithPath: "/nonexistent/model.pth")) }
}

/// `--vae taesd`: with a TAESD set, the pipeline's decode is TAESD's, through the same byte conversion.
@Test func pipelineDecodesWithTinyAutoencoder() throws {
    var pipeline = try Pipeline(weights: NetworkFixtures.model("tiny-sd1"))
    let taesd = try TinyAutoencoder.load(modelFixtures.appendingPathComponent("tiny-taesd"))
    let fixture = try #require(try FinishingFixtures.cases("taesd").first)
    let latents = try FinishingFixtures.tensor(fixture.inputs["latents"]!)
    let vaeBytes = pipeline.decode(latents)
    pipeline.tinyAutoencoder = taesd
    let bytes = pipeline.decode(latents)
    #expect(bytes == Pipeline.bytes(taesd.decode(latents)))
    #expect(bytes != vaeBytes)
    // A preview is the first image's decode, pooled down to the size asked for.
    let preview = taesd.preview(Tensor.concat([latents, latents], axis: 0), maxSide: 16)
    #expect(preview.width == 16 && preview.height == 16 && preview.rgb.count == 16 * 16 * 3)
    #expect(taesd.preview(latents).rgb == bytes[0])
}

/// Scales other than the model's: repeated passes, then an exact area shrink to the rounded size.
@Test func upscaleToOtherScales() throws {
    let upscaler = try Upscaler.load(FinishingFixtures.upscalers.appendingPathComponent("compact-x4.pth"))
    let image = Tensor(shape: [1, 3, 9, 10], values: (0..<270).map { Float($0 % 17) / 16 })
    #expect(upscaler.upscale(image, by: 3).shape == [1, 3, 27, 30])
    #expect(upscaler.upscale(image, by: 6).shape == [1, 3, 54, 60])
    let whole = upscaler.upscale(image)
    #expect(upscaler.upscale(image, by: 2).maxAbsDifference(whole.averagePooled(2)) < 1e-5)
    // Area shrinking: halves are 2×2 means; a constant stays constant at any ratio.
    let ramp = Tensor(shape: [1, 1, 2, 4], values: [0, 1, 2, 3, 4, 5, 6, 7])
    #expect(ramp.resizedByArea(height: 1, width: 2).scalars == [2.5, 4.5])
    let constant = Tensor(repeating: 0.25, shape: [1, 2, 7, 9]).resizedByArea(height: 3, width: 4)
    #expect(constant.scalars.allSatisfy { abs($0 - 0.25) < 1e-6 })
}

/// The three RRDBNet layouts (old ESRGAN, BSRGAN, Real-ESRGAN) of the same weights build the same network.
@Test func rrdbKeyLayoutsLoadAlike() throws {
    let file = FinishingFixtures.upscalers.appendingPathComponent("rrdb-x4.safetensors")
    let old = try SafeTensorsFile(url: file).allTensors()
    func renamed(_ names: [String: String], trunk: String, block: String) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (key, tensor) in old {
            let parts = key.split(separator: ".").map(String.init)
            let suffix = parts.last!
            if key.hasPrefix("model.1.sub.0.") {  // model.1.sub.0.RDBk.convj.0.weight
                result["\(trunk).0.\(block)\(parts[4].dropFirst(3)).\(parts[5]).\(suffix)"] = tensor
            } else {
                result["\(names[parts.dropLast().joined(separator: ".")]!).\(suffix)"] = tensor
            }
        }
        return result
    }
    let bsrgan = renamed(
        [
            "model.0": "conv_first", "model.1.sub.1": "trunk_conv", "model.3": "upconv1", "model.6": "upconv2", "model.8": "HRconv",
            "model.10": "conv_last",
        ],
        trunk: "RRDB_trunk", block: "RDB")
    let realESRGAN = renamed(
        [
            "model.0": "conv_first", "model.1.sub.1": "conv_body", "model.3": "conv_up1", "model.6": "conv_up2", "model.8": "conv_hr",
            "model.10": "conv_last",
        ], trunk: "body", block: "rdb")
    #expect(bsrgan.keys.contains("RRDB_trunk.0.RDB2.conv3.weight") && realESRGAN.keys.contains("body.0.rdb3.conv5.bias"))
    let image = Tensor(shape: [1, 3, 6, 5], values: (0..<90).map { Float($0 % 11) / 10 })
    let reference = try Upscaler(weights: old, source: "old").upscale(image)
    for (name, weights) in [("BSRGAN", bsrgan), ("Real-ESRGAN", realESRGAN)] {
        let upscaler = try Upscaler(weights: weights, source: name)
        #expect(upscaler.scale == 4 && upscaler.architecture == .esrgan)
        #expect(upscaler.upscale(image).maxAbsDifference(reference) == 0, "\(name)")
    }
}
