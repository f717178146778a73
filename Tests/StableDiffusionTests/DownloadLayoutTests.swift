import Foundation
import StableDiffusion
import Tensors
import Testing

/// Single files laid out as real downloads are (Tools/make_download_fixtures.py): EMA copies,
/// scheduler buffers, the VAE's loss, int64 position ids and counters beside the three networks.
struct DownloadLayoutCase: CustomTestStringConvertible, Sendable {
    let file: String
    let folder: String
    var testDescription: String { file }
}

let downloadLayoutCases = [
    "tiny-sd1-download.safetensors", "tiny-sd1-download.ckpt",
    "tiny-sd2-download.safetensors", "tiny-sd2-download.ckpt",
].map {
    DownloadLayoutCase(file: $0, folder: $0.hasPrefix("tiny-sd1") ? "tiny-sd1" : "tiny-sd2")
}

@Test(arguments: downloadLayoutCases)
func downloadLayoutLoadsAsTheDiffusersFolder(_ fixture: DownloadLayoutCase) throws {
    let folder = try ModelWeights.load(modelFixtures.appendingPathComponent(fixture.folder))
    let file = try ModelWeights.load(modelFixtures.appendingPathComponent(fixture.file))
    #expect(file.family == folder.family)
    expectIdentical(folder.unet, file.unet, "\(fixture.file) unet")
    expectIdentical(folder.vae, file.vae, "\(fixture.file) vae")
    expectIdentical(folder.textEncoder, file.textEncoder, "\(fixture.file) text encoder")
    // A single file cannot say its native size: 512 × 512, or 768 × 768 for an SD 2.x v-prediction model.
    #expect(file.unetConfig.sampleSize == (file.schedulerConfig.predictionType == "v_prediction" ? 96 : 64))
    var unetConfig = file.unetConfig
    unetConfig.sampleSize = folder.unetConfig.sampleSize
    #expect(unetConfig == folder.unetConfig)
    // The end id is not in a single file (the original configs' 2 is assumed); only SDXL's pooled output reads it.
    var textConfig = file.textEncoderConfig
    textConfig.eosTokenID = folder.textEncoderConfig.eosTokenID
    #expect(file.textEncoderConfig.eosTokenID == 2 && textConfig == folder.textEncoderConfig)
    #expect(file.schedulerConfig.predictionType == folder.schedulerConfig.predictionType)
    // What was left unread is reported, and is exactly the extra keys the fixture added.
    let ignored = Set(file.ignoredKeys)
    for key in [
        "model_ema.decay", "model_ema.num_updates", "betas", "alphas_cumprod", "alphas_cumprod_prev",
        "sqrt_alphas_cumprod", "posterior_mean_coef2", "logvar", "first_stage_model.loss.logvar",
        "first_stage_model.loss.discriminator.main.3.num_batches_tracked",
        "model_ema.diffusion_modelinput_blocks00weight",
    ] {
        #expect(ignored.contains(key), "\(key) should be reported as ignored")
    }
    if folder.family == .sd1 {
        #expect(ignored.contains("cond_stage_model.transformer.text_model.embeddings.position_ids"))
    }
    #expect(!ignored.contains { $0.hasPrefix("model.diffusion_model.") }, "no UNet weight may be ignored")
    #expect(ignored.count >= 500, "the EMA copy has one key per UNet weight; \(ignored.count) ignored")
}

@Test(arguments: downloadLayoutCases)
func downloadLayoutRendersAsTheDiffusersFolder(_ fixture: DownloadLayoutCase) throws {
    func render(_ name: String) throws -> [Float] {
        let pipeline = try Pipeline(weights: try ModelWeights.load(modelFixtures.appendingPathComponent(name)))
        var settings = Pipeline.Settings()
        (settings.width, settings.height, settings.steps, settings.seed) = (24, 16, 3, 11)
        settings.sampler = .euler
        // The tiny encoders have a 1000-token vocabulary: ids, not text.
        let ids = (0..<77).map { ($0 * 37 + 5) % 1000 }
        let negative = (0..<77).map { ($0 * 11 + 3) % 1000 }
        return try pipeline.sample(
            conditional: pipeline.textEncoder([ids]), unconditional: pipeline.textEncoder([negative]),
            settings: settings
        ).scalars
    }
    let expected = try render(fixture.folder)
    let actual = try render(fixture.file)
    #expect(actual == expected, "the single file must render bit for bit as the diffusers folder")
    #expect(expected.contains { $0 != 0 } && expected.allSatisfy(\.isFinite))
}

/// dtypes.json: the values and shapes PyTorch wrote into dtypes.safetensors.
struct StoredTensorExpectation: Decodable {
    let shape: [Int]
    let values: [Float]
    let dtype: String
}

@Test func integerAndBoolTensorsAreReadAsFloat() throws {
    let file = try SafeTensorsFile(url: modelFixtures.appendingPathComponent("dtypes.safetensors"))
    let expected = try JSONDecoder().decode(
        [String: StoredTensorExpectation].self,
        from: Data(contentsOf: modelFixtures.appendingPathComponent("dtypes.json")))
    #expect(Set(expected.keys) == ["i8", "i16", "i32", "i64", "u8", "bool", "f64"])
    for (name, expectation) in expected {
        let tensor = try file.tensor(name)
        #expect(tensor.shape == expectation.shape, "\(name) (\(expectation.dtype))")
        #expect(tensor.scalars == expectation.values, "\(name) (\(expectation.dtype))")
    }
}

@Test func unknownDTypeFailsOnlyWhenRead() throws {
    // A header with an fp8 tensor beside a float one: the file opens, the float tensor reads,
    // and reading the fp8 tensor names its dtype.
    let header = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[8,12]}}"#
    var data = Data()
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
    data.append(Data(header.utf8))
    [Float(1.5), -2].withUnsafeBytes { data.append(contentsOf: $0) }
    data.append(contentsOf: [1, 2, 3, 4])
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fp8-\(UUID().uuidString).safetensors")
    try data.write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    let file = try SafeTensorsFile(url: url)
    #expect(try file.tensor("w").scalars == [1.5, -2])
    #expect { try file.tensor("q") } throws: { error in
        "\(error)".contains("F8_E4M3") && "\(error)".contains("\"q\"")
    }
}
