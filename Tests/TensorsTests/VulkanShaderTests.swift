import Foundation
import Tensors
import Testing

/// The shader sources next to this file's package (Sources/Tensors/Shaders).
private let shaderFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Sources/Tensors/Shaders")

/// The committed SPIR-V is what glslc makes of the committed GLSL today: a shader edited without running
/// Tools/compile_shaders.sh fails here. Needs glslc (Deploy/install-deps.sh --test installs it).
@Test func committedSPIRVIsFresh() throws {
    let sources = try FileManager.default.contentsOfDirectory(atPath: shaderFolder.path).filter { $0.hasSuffix(".comp") }.sorted()
    #expect(sources.map { String($0.dropLast(5)) } == VulkanShaders.names, "run Tools/compile_shaders.sh: shaders were added or removed")
    let flags = try String(contentsOf: shaderFolder.appendingPathComponent("glslc-flags"), encoding: .utf8)
        .split(whereSeparator: \.isWhitespace).map(String.init)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("spirv-\(getpid())")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    for source in sources {
        let name = String(source.dropLast(5))
        let output = scratch.appendingPathComponent("\(name).spv")
        let glslc = Process()
        glslc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        glslc.arguments = ["glslc"] + flags + ["-o", output.path, shaderFolder.appendingPathComponent(source).path]
        try glslc.run()
        glslc.waitUntilExit()
        try #require(glslc.terminationStatus == 0, "glslc failed on \(source) (is glslc installed? apt-get install glslc)")
        let fresh = [UInt8](try Data(contentsOf: output))
        #expect(VulkanShaders.spirv(name) == fresh, "the committed SPIR-V of \(source) is stale: run Tools/compile_shaders.sh")
    }
}

/// The test device is the first `Vulkan.devices()` lists, describes itself, and `--device` names parse.
@Test func vulkanListsTheTestDevice() throws {
    guard let device = vulkanTestDevice() else { return }
    let devices = try Vulkan.devices()
    #expect(devices.first?.name == device.info.name)
    #expect(device.info.subgroupSize > 0 && device.info.memoryBytes > 0)
    #expect(ComputeDevice("vulkan:1") == .vulkan(1) && ComputeDevice("VULKAN") == .vulkan(0) && ComputeDevice("cpu") == .cpu)
    #expect(ComputeDevice("gpu") == nil && ComputeDevice("vulkan:-1") == nil)
}
