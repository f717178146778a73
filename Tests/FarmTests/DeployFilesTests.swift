import Foundation
import Testing
import Yams

let deployFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Deploy")

/// Every `farm SUBCOMMAND --flag …` in `text` (units, Dockerfile, compose), as (subcommand, flags).
func farmInvocations(_ text: String) -> [(command: [String], flags: [String])] {
    var found: [(command: [String], flags: [String])] = []
    for fullLine in text.components(separatedBy: .newlines) {
        // Shell comments mention flags in prose; only the command counts.
        let line = fullLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let words = line.replacingOccurrences(of: "\"", with: " ").replacingOccurrences(of: ",", with: " ")
            .replacingOccurrences(of: "[", with: " ").replacingOccurrences(of: "]", with: " ").split(separator: " ").map(String.init)
        guard let index = words.firstIndex(where: { $0.hasSuffix("/farm") }), index + 1 < words.count else { continue }
        var command = [words[index + 1]]
        if ["keys", "tokens"].contains(command[0]), index + 2 < words.count { command.append(words[index + 2]) }
        found.append((command, words[(index + 1)...].filter { $0.hasPrefix("--") }))
    }
    return found
}

@Test func systemdUnitsVerify() throws {
    let units = ["farm-coordinator.service", "farm-worker.service"]
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("units-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    var texts: [String] = []
    for unit in units {
        let text = try String(contentsOf: deployFolder.appendingPathComponent("systemd/\(unit)"), encoding: .utf8)
        texts.append(text)
        // systemd-analyze checks that ExecStart's program exists: point it at the binary under test.
        try text.replacingOccurrences(of: "/usr/local/bin/farm", with: farmBinary.path)
            .write(to: folder.appendingPathComponent(unit), atomically: true, encoding: .utf8)
    }
    let analyzer = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }
    if let analyzer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyzer)
        process.arguments = ["verify"] + units.map { folder.appendingPathComponent($0).path }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && said.isEmpty, "systemd-analyze verify: \(said)")
    } else {
        for text in texts {
            for section in ["[Unit]", "[Service]", "[Install]"] { #expect(text.contains(section)) }
        }
    }
    for text in texts {
        #expect(text.contains("Restart=always") && text.contains("EnvironmentFile=/etc/diffusionfarm/farm.env"))
    }
}

@Test func composeFileDescribesAWholeFarm() throws {
    let text = try String(contentsOf: deployFolder.appendingPathComponent("container/compose.yaml"), encoding: .utf8)
    let compose = try #require(try Yams.load(yaml: text) as? [String: Any])
    let services = try #require(compose["services"] as? [String: Any])
    #expect(Set(services.keys) == ["postgres", "keys", "coordinator", "worker"])
    let worker = try #require(services["worker"] as? [String: Any])
    #expect((worker["deploy"] as? [String: Any])?["replicas"] as? Int == 2)
    let coordinator = try #require(services["coordinator"] as? [String: Any])
    let build = try #require(coordinator["build"] as? [String: Any])
    #expect(build["target"] as? String == "coordinator" && build["dockerfile"] as? String == "Deploy/container/Dockerfile")
    let dockerfile = try String(contentsOf: deployFolder.appendingPathComponent("container/Dockerfile"), encoding: .utf8)
    for target in ["coordinator", "worker"] { #expect(dockerfile.contains("AS \(target)")) }
}

@Test func deployFilesUseOnlyRealFlags() throws {
    // Every farm command line in the units, the container files and the multi-host guide names a
    // subcommand and flags that this farm binary has.
    let files =
        ["systemd/farm-coordinator.service", "systemd/farm-worker.service", "container/Dockerfile", "container/compose.yaml"]
        .map { deployFolder.appendingPathComponent($0) }
        + [deployFolder.deletingLastPathComponent().appendingPathComponent("docs/MULTI-HOST.md")]
    var checked = 0
    for file in files {
        let text = try String(contentsOf: file, encoding: .utf8)
            .replacingOccurrences(of: "sudo -u farm farm ", with: " /farm ").replacingOccurrences(of: "\nfarm ", with: "\n/farm ")
        for invocation in farmInvocations(text) {
            let help = try runFarmCapturing(invocation.command + ["--help"])
            #expect(help.status == 0, "\(file.lastPathComponent): farm \(invocation.command.joined(separator: " ")) is not a command")
            for flag in invocation.flags where !["--help"].contains(flag) {
                let name = String(flag.prefix { $0 != "=" })
                #expect(help.stdout.contains(name), "\(file.lastPathComponent): farm \(invocation.command.joined(separator: " ")) has no \(name)")
            }
            checked += 1
        }
    }
    #expect(checked >= 12, "found \(checked) farm command lines")
}
