import Foundation
import Testing

/// Runs `farm` with extra environment variables and returns its exit status and standard output.
private func farmOutput(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (status: Int32, stdout: String) {
    let process = Process()
    process.executableURL = farmBinary
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// `farm devices` lists the CPU and the Vulkan device the tests run on (lavapipe in CI), as a table and as JSON.
@Test func farmDevicesListsVulkanDevices() throws {
    if ProcessInfo.processInfo.environment["DIFFUSIONFARM_SKIP_VULKAN"] == "1" { return }
    let table = try farmOutput(["devices"])
    #expect(table.status == 0)
    #expect(table.stdout.contains("cpu "), "\(table.stdout)")
    #expect(table.stdout.contains("vulkan:0"), "no Vulkan device listed (install mesa-vulkan-drivers): \(table.stdout)")
    let json = try farmOutput(["devices", "--json"])
    let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    let vulkan = report?["vulkan"] as? [[String: Any]] ?? []
    #expect(!vulkan.isEmpty, "\(json.stdout)")
    let first = vulkan.first ?? [:]
    #expect((first["subgroupSize"] as? Int ?? 0) > 0 && (first["memoryBytes"] as? Int ?? 0) > 0)
    #expect(first["float16"] is Bool && first["cooperativeMatrixShapes"] is [Any])
}

/// Without a working driver `farm devices` still lists the CPU and says why there is no Vulkan (exit 0: a CPU-only
/// host is a valid host).
@Test func farmDevicesExplainsMissingVulkan() throws {
    let missing = ["VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": "/nonexistent/icd.json"]
    let table = try farmOutput(["devices"], environment: missing)
    #expect(table.status == 0)
    #expect(table.stdout.contains("cpu ") && table.stdout.contains("no Vulkan devices:"), "\(table.stdout)")
    #expect(!table.stdout.contains("vulkan:0"))
}
