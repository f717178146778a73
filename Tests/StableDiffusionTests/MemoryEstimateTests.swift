import Foundation
import StableDiffusion
import Tensors
import Testing

/// The fixture models' folder.
private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/models")

/// Parameters of the safetensors files under `folder` (recursively) whose names pass `include`.
private func parameters(under folder: URL, include: (String) -> Bool = { _ in true }) throws -> Int {
    let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
    return try files.filter { $0.pathExtension == "safetensors" && include($0.lastPathComponent) }.reduce(0) { total, url in
        total + (try SafeTensorsFile(url: url).entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) })
    }
}

/// Each kind of models-folder entry is told apart from its files alone, with its UNet class and its loaded size
/// (these fixtures are Float32: 4 bytes a parameter): an fp16 variant beside the full file is not counted twice.
@Test func weightsSummariesTellKindsAndClassesApart() throws {
    let sd1 = try #require(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sd1")))
    #expect(sd1.kind == .model && sd1.architecture == .sd)
    let sd1Parameters = try parameters(under: fixtures.appendingPathComponent("tiny-sd1")) { !$0.contains(".fp16.") }
    #expect(sd1.loadedBytes == 4 * sd1Parameters)
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sd2"))?.architecture == .sd)

    let xl = try #require(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sdxl")))
    let xlParameters = try parameters(under: fixtures.appendingPathComponent("tiny-sdxl")) { !$0.contains(".fp16.") }
    #expect(xl.kind == .model && xl.architecture == .sdxl && xl.loadedBytes == 4 * xlParameters)
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sdxl-refiner"))?.architecture == .sdxl)
    // SDXL single files in the SGM layout (base and refiner): the same class and Float32 size as the folders.
    let xlFile = try #require(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sdxl.safetensors")))
    #expect(xlFile.kind == .model && xlFile.architecture == .sdxl && xlFile.loadedBytes == xl.loadedBytes)
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sdxl-refiner.safetensors"))?.architecture == .sdxl)

    let single = try #require(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sd1.safetensors")))
    #expect(single.kind == .model && single.architecture == .sd && single.loadedBytes == sd1.loadedBytes)
    let ckpt = fixtures.appendingPathComponent("tiny-sd1.ckpt")
    let ckptSize = try #require(try FileManager.default.attributesOfItem(atPath: ckpt.path)[.size] as? Int)
    #expect(try WeightsSummary.inspect(ckpt) == WeightsSummary(kind: .model, architecture: .sd, loadedBytes: ckptSize))
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sd2.safetensors"))?.architecture == .sd)
    let xlVAEURL = fixtures.appendingPathComponent("tiny-sdxl-vae.safetensors")
    let xlVAEFile = try #require(try WeightsSummary.inspect(xlVAEURL))
    let xlVAEParameters = try SafeTensorsFile(url: xlVAEURL).entries.values.reduce(0) { $0 + $1.shape.reduce(1, *) }
    #expect(xlVAEFile.kind == .vae && xlVAEFile.architecture == nil && xlVAEFile.loadedBytes == 4 * xlVAEParameters)

    let vae = try #require(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sdxl/vae")))
    let vaeParameters = try parameters(under: fixtures.appendingPathComponent("tiny-sdxl/vae"))
    #expect(vae.kind == .vae && vae.loadedBytes == 4 * vaeParameters)
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-controlnet"))?.kind == .controlNet)
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sdxl-controlnet"))?.kind == .controlNet)
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sd1.config.json")) == nil)
    #expect(try WeightsSummary.inspect(fixtures.appendingPathComponent("tiny-sd1/unet")) == nil, "a UNet alone is none of the kinds")
}

/// A `.safetensors` holding only a VAE (as the web UIs' `*_vae.safetensors`) is a VAE, not a model; stored as
/// fp16 it counts two bytes a parameter, as its halves stay resident.
@Test func aSafetensorsVAEIsAVAE() throws {
    let source = fixtures.appendingPathComponent("tiny-sd1/vae/diffusion_pytorch_model.safetensors")
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("vae-\(UUID().uuidString.prefix(6)).safetensors")
    defer { try? FileManager.default.removeItem(at: file) }
    let tensors = try SafeTensorsFile(url: source).allTensors()
    try SafeTensorsFile.write(tensors, to: file)
    let summary = try #require(try WeightsSummary.inspect(file))
    let vaeParameters = try parameters(under: fixtures.appendingPathComponent("tiny-sd1/vae")) { !$0.contains(".fp16.") }
    #expect(summary.kind == .vae && summary.architecture == nil && summary.loadedBytes == 4 * vaeParameters)
    try SafeTensorsFile.write(tensors.mapValues { $0.narrowed(to: .float16) }, to: file)
    #expect(try WeightsSummary.inspect(file)?.loadedBytes == 2 * vaeParameters)
}

/// The limit is what is left after the reserve and the weights, at the class's bytes per pixel; nothing when the
/// weights take it all, and never beyond a 32-bit count.
@Test func memoryEstimatesDivideWhatIsLeft() {
    let gib: UInt64 = 1 << 30
    #expect(MemoryEstimate.bytesPerPixel(.sd) == 4_700 && MemoryEstimate.bytesPerPixel(.sdxl) == 5_000)
    #expect(MemoryEstimate.bytesPerPixel(nil) == MemoryEstimate.bytesPerPixel(.sdxl))
    #expect(MemoryEstimate.reserveBytes(memoryBytes: 16 * gib) == gib + 16 * gib / 10)
    // 16 GiB with SD 1.5's 4.3 GB of Float32 weights: room for about 1448².
    let sd15 = MemoryEstimate.maxPixels(memoryBytes: 16 * gib, weightsBytes: 4_300_000_000, architecture: .sd)
    #expect(sd15 == Int((16 * gib - gib - 16 * gib / 10 - 4_300_000_000) / 4_700))
    #expect(sd15 > 1_400 * 1_400 && sd15 < 1_500 * 1_500)
    // SDXL's base (about 14 GiB in Float32) on 24 GiB still takes 1024², with its refiner it does not.
    #expect(MemoryEstimate.maxPixels(memoryBytes: 24 * gib, weightsBytes: Int(14 * gib), architecture: .sdxl) > 1024 * 1024)
    #expect(MemoryEstimate.maxPixels(memoryBytes: 24 * gib, weightsBytes: Int(26 * gib), architecture: .sdxl) == 0)
    #expect(MemoryEstimate.maxPixels(memoryBytes: 1 << 50, weightsBytes: 0, architecture: .sd) == Int(Int32.max))
}
