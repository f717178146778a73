import Foundation
import StableDiffusion
import Tensors
import Testing

/// The samplers the device pipelines are checked with (one of each family: DDIM, Euler, ancestral, DPM++).
private let vulkanSamplers: Set<String> = ["ddim", "euler", "euler_a", "dpmpp_2m"]

/// The same images from the CPU and the Vulkan device: 8-bit samples within 1/255 on average (the bar)
/// and within 4/255 everywhere.
private func expectSameImages(_ cpu: [[UInt8]], _ device: [[UInt8]], _ name: String) {
    #expect(cpu.count == device.count && cpu.map(\.count) == device.map(\.count), "\(name): image sizes differ")
    let differences = zip(cpu.joined(), device.joined()).map { abs(Int($0) - Int($1)) }
    let mean = Double(differences.reduce(0, +)) / Double(max(differences.count, 1))
    #expect(mean <= 1, "\(name): Vulkan images differ from the CPU's by \(mean)/255 on average")
    #expect((differences.max() ?? 0) <= 4, "\(name): Vulkan images differ from the CPU's by up to \(differences.max() ?? 0)/255")
}

@Test(
    arguments: try fixtureCases("pipelines.json", as: PipelineCase.self).filter {
        $0.model == "tiny-sd1" && vulkanSamplers.contains($0.sampler)
    })
func txt2imgOnVulkanMatchesCPU(_ fixture: PipelineCase) throws {
    guard let device = vulkanNetworkDevice() else { return }
    let cpu = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    let gpu = cpu.running(on: device)
    #expect(gpu.device === device && cpu.device == nil)
    let images = try [cpu, gpu].map { $0.decode(try $0.sample(fixture.run, sampler: fixture.sampler)) }
    expectSameImages(images[0], images[1], "txt2img \(fixture.sampler)")
}

@Test(
    arguments: try fixtureCases("img2img.json", as: Img2ImgCase.self).filter {
        $0.model == "tiny-sd1" && vulkanSamplers.contains($0.sampler)
    })
func img2imgOnVulkanMatchesCPU(_ fixture: Img2ImgCase) throws {
    guard let device = vulkanNetworkDevice() else { return }
    let cpu = try Pipeline(weights: try NetworkFixtures.model(fixture.model))
    let settings = fixture.run.settings
    let image = Pipeline.pixels(rgb: fixture.initImage, width: settings.width, height: settings.height)
    let images = try [cpu, cpu.running(on: device)].map {
        $0.decode(try $0.sample(fixture.run, sampler: fixture.sampler, image: image, strength: fixture.strength))
    }
    expectSameImages(images[0], images[1], "img2img \(fixture.sampler)")
}

@Test(arguments: try fixtureCases("inpaint.json", as: InpaintCase.self))
func inpaintingOnVulkanMatchesCPU(_ fixture: InpaintCase) throws {
    guard let device = vulkanNetworkDevice() else { return }
    var weights = try NetworkFixtures.model("tiny-sd1")
    if fixture.unet == "inpaint" {
        let folder = modelFixtures.appendingPathComponent("tiny-inpaint-unet")
        weights.unetConfig = try JSONDecoder().decode(UNetConfig.self, from: Data(contentsOf: folder.appendingPathComponent("config.json")))
        weights.unet = try SafeTensorsFile(url: folder.appendingPathComponent("diffusion_pytorch_model.safetensors")).allTensors()
    }
    let cpu = try Pipeline(weights: weights)
    let settings = fixture.run.settings
    let mask = Tensor(shape: [1, 1, settings.height, settings.width], values: fixture.mask.map { Float($0) / 255 })
    let image = Pipeline.pixels(rgb: fixture.image, width: settings.width, height: settings.height)
    let images = try [cpu, cpu.running(on: device)].map {
        $0.decode(try $0.sample(fixture.run, sampler: fixture.sampler, image: image, strength: fixture.strength, mask: mask))
    }
    expectSameImages(images[0], images[1], "inpainting \(fixture.sampler) (\(fixture.unet) UNet)")
}
