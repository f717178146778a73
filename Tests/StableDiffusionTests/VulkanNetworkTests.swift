import Foundation
import StableDiffusion
import Tensors
import Testing

/// The Vulkan device the network tests run on (lavapipe in CI), opened once per test process.
private let sharedDevice: Result<VulkanDevice, any Error> = Result { try VulkanDevice(index: 0) }

/// The test device, or nil after recording a failure: no Vulkan device is an error, not a skip, unless
/// DIFFUSIONFARM_SKIP_VULKAN=1 is set (developer machines without Vulkan; never in CI).
func vulkanNetworkDevice() -> VulkanDevice? {
    switch sharedDevice {
    case .success(let device): return device
    case .failure(let error):
        if ProcessInfo.processInfo.environment["DIFFUSIONFARM_SKIP_VULKAN"] == "1" { return nil }
        Issue.record("no Vulkan device: \(error). Install mesa-vulkan-drivers, or set DIFFUSIONFARM_SKIP_VULKAN=1 to skip")
        return nil
    }
}

/// Every network of the tiny fixtures (text encoders, UNets, VAE encode/decode, ControlNet) on the Vulkan device
/// matches the same network on the CPU within 1e-3 of the output's scale; the device stores weights as float16,
/// which is most of that difference.
@Test(arguments: try NetworkFixtures.cases())
func networkOnVulkanMatchesCPU(_ fixture: NetworkCase) throws {
    guard let device = vulkanNetworkDevice() else { return }
    let cpu = try networkOutputs(fixture, device: nil)
    let gpu = try networkOutputs(fixture, device: device)
    #expect(Set(cpu.keys) == Set(gpu.keys))
    for (name, reference) in cpu {
        guard let ours = gpu[name] else { continue }
        #expect(ours.device == nil, "\(fixture.name) \(name): a network's output must come back to the host")
        #expect(ours.shape == reference.shape, "\(fixture.name) \(name)")
        guard ours.shape == reference.shape else { continue }
        let error = relativeError(ours, reference)
        #expect(error < 1e-3, "\(fixture.name) \(name): Vulkan vs CPU relative error \(error)")
    }
}
