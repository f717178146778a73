import Foundation
import Tensors
import Testing

/// The Vulkan device the kernel tests run on (lavapipe in CI), opened once per test process.
private let sharedDevice: Result<VulkanDevice, VulkanError> = {
    do { return .success(try VulkanDevice(index: 0)) } catch let error as VulkanError { return .failure(error) } catch {
        return .failure(VulkanError("\(error)"))
    }
}()

/// The test device, or nil after recording a failure: no Vulkan device is an error, not a skip, unless
/// DIFFUSIONFARM_SKIP_VULKAN=1 is set (for developer machines without a Vulkan driver; never set in CI, where
/// Deploy/install-deps.sh --test installs Mesa's lavapipe).
func vulkanTestDevice() -> VulkanDevice? {
    switch sharedDevice {
    case .success(let device): return device
    case .failure(let error):
        if ProcessInfo.processInfo.environment["DIFFUSIONFARM_SKIP_VULKAN"] == "1" { return nil }
        let advice = "install mesa-vulkan-drivers (Deploy/install-deps.sh --test), or set DIFFUSIONFARM_SKIP_VULKAN=1 to skip"
        Issue.record("no Vulkan device: \(error); \(advice) the Vulkan tests on a machine without Vulkan")
        return nil
    }
}

/// The largest difference between `device` and `cpu` relative to the largest CPU element (at least 1).
func relativeError(_ device: Tensor, _ cpu: Tensor) -> Float {
    #expect(device.shape == cpu.shape)
    guard device.shape == cpu.shape else { return .infinity }
    return device.maxAbsDifference(cpu) / max(cpu.absMax(), 1)
}

/// A tensor of `shape` filled with reproducible values in [−scale, scale).
func randomTensor(_ shape: [Int], seed: UInt32, scale: Float = 1) -> Tensor {
    Tensor(shape: shape, values: pseudoRandom(shape.reduce(1, *), seed: seed).map { $0 * scale })
}

/// `weight` as the device stores it (float16), widened back: the CPU reference then differs from the device only in
/// the order of its sums.
func halfRounded(_ weight: Tensor) -> Tensor { weight.narrowed(to: .float16).widened() }
