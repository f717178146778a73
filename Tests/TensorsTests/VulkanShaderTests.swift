import Foundation
import Tensors
import Testing

/// The shader sources next to this file's package (Sources/Tensors/Shaders).
private let shaderFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Sources/Tensors/Shaders")

/// The generated SPIR-V files next to the shaders' package (Sources/Tensors/Vulkan/VulkanShaders+<Group>SPIRV.swift).
private let generatedFolder = shaderFolder.deletingLastPathComponent().appendingPathComponent("Vulkan")

/// Each shader's SPIR-V as the generated file `file` holds it, by name (read from the file's text, not the build,
/// so that a file the build would not include, or one left behind by a removed group, is checked too).
private func committedSPIRV(in file: String) throws -> [String: [UInt8]] {
    let lines = try String(contentsOf: generatedFolder.appendingPathComponent(file), encoding: .utf8).split(separator: "\n")
    var shaders: [String: [UInt8]] = [:]
    var name: String?
    var text = ""
    for line in lines.map({ $0.trimmingCharacters(in: .whitespaces) }) {
        if let current = name {
            guard line.hasPrefix("\"\"\"") else {
                text += line
                continue
            }
            shaders[current] = Data(base64Encoded: text).map { [UInt8]($0) } ?? []
            (name, text) = (nil, "")
        } else if line.hasPrefix("\""), line.hasSuffix("\": \"\"\"") {
            name = String(line.dropFirst().dropLast(6))
        }
    }
    return shaders
}

/// The committed SPIR-V is what glslc makes of the committed GLSL today, in every generated file and in the build:
/// a shader edited without running Tools/compile_shaders.sh fails here. Needs glslc (Deploy/install-deps.sh --test
/// installs it).
@Test func committedSPIRVIsFresh() throws {
    let sources = try FileManager.default.contentsOfDirectory(atPath: shaderFolder.path).filter { $0.hasSuffix(".comp") }.sorted()
    #expect(sources.map { String($0.dropLast(5)) } == VulkanShaders.names, "run Tools/compile_shaders.sh: shaders were added or removed")
    let files = try FileManager.default.contentsOfDirectory(atPath: generatedFolder.path)
        .filter { $0.hasPrefix("VulkanShaders+") && $0.hasSuffix("SPIRV.swift") }.sorted()
    var committed: [String: (file: String, spirv: [UInt8])] = [:]
    var filesWithShaders = 0
    for file in files {
        let shaders = try committedSPIRV(in: file)
        if !shaders.isEmpty { filesWithShaders += 1 }
        for (name, spirv) in shaders {
            #expect(committed[name] == nil, "\(name) is in both \(committed[name]?.file ?? "") and \(file): run Tools/compile_shaders.sh")
            committed[name] = (file, spirv)
        }
    }
    // Without this, renamed or moved generated files would make the loop below check nothing.
    try #require(filesWithShaders > 0, "no generated SPIR-V files (VulkanShaders+*SPIRV.swift) in \(generatedFolder.path)")
    #expect(
        committed.keys.sorted() == sources.map { String($0.dropLast(5)) },
        "run Tools/compile_shaders.sh: the generated files hold \(committed.keys.sorted()), the shaders are \(sources)")
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
        // Compared first, so that a stale file is reported in one line rather than as two byte arrays.
        let fileIsFresh = committed[name]?.spirv == fresh
        #expect(
            fileIsFresh,
            "the SPIR-V of \(source) in \(committed[name]?.file ?? "no generated file") is stale: run Tools/compile_shaders.sh")
        #expect(VulkanShaders.spirv(name) == fresh, "the built SPIR-V of \(source) is stale: run Tools/compile_shaders.sh")
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
