import Foundation
import Testing

/// A temporary YAML config file.
func configFile(_ text: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("farm-config-\(UUID().uuidString.prefix(6)).yaml")
    try text.write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// Flags beat FARM_… variables, which beat the config file, which beats the defaults; `--print-config`
/// shows each value with its source and never the database password.
@Test func daemonSettingsComeFromFlagsThenEnvironmentThenFile() throws {
    let file = try configFile("lease-seconds: 40\nheartbeat: 2\nhttp: 127.0.0.1:9000\n")
    defer { try? FileManager.default.removeItem(at: file) }
    let environment = [
        "FARM_LEASE_SECONDS": "30", "FARM_DATABASE": "postgresql://farm:hunter2@db.example/farm",
        "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin",
    ]
    let result = try runFarmCapturing(
        ["coordinator", "--config", file.path, "--heartbeat", "3", "--insecure", "--print-config"],
        environment: environment)
    #expect(result.status == 0, "\(result.stderr)")
    let lines = Set(result.stdout.split(separator: "\n").map { $0.replacingOccurrences(of: "   (", with: " (") })
    #expect(lines.contains("lease-seconds = 30 (environment FARM_LEASE_SECONDS)"), "\(result.stdout)")
    #expect(lines.contains("heartbeat = 3 (flag)"), "\(result.stdout)")
    #expect(lines.contains("http = 127.0.0.1:9000 (file \(file.path))"), "\(result.stdout)")
    #expect(lines.contains("listen = tcp://127.0.0.1:5555 (default)"), "\(result.stdout)")
    #expect(lines.contains("missed-heartbeats = 5 (default)"), "\(result.stdout)")
    #expect(lines.contains("insecure = true (flag)"), "\(result.stdout)")
    #expect(lines.contains("database = postgresql://farm:***@db.example/farm (environment FARM_DATABASE)"), "\(result.stdout)")
    #expect(!result.stdout.contains("hunter2") && !result.stderr.contains("hunter2"))

    // Workers: a list from the environment, a flag from the file, a key/value password masked.
    let workerFile = try configFile("insecure: true\nslots: 3\ndatabase-unused: 1\n")
    defer { try? FileManager.default.removeItem(at: workerFile) }
    let unknown = try runFarmCapturing(["worker", "--config", workerFile.path, "--print-config"], environment: environment)
    #expect(unknown.status == 2 && unknown.stderr.contains("unknown setting \"database-unused\""), "\(unknown.stderr)")
    try "insecure: true\nslots: 3\n".write(to: workerFile, atomically: true, encoding: .utf8)
    var workerEnvironment = environment
    workerEnvironment["FARM_COORDINATOR"] = "tcp://a.example:5555, tcp://b.example:5555"
    let worker = try runFarmCapturing(["worker", "--config", workerFile.path, "--print-config"], environment: workerEnvironment)
    #expect(worker.status == 0, "\(worker.stderr)")
    let workerLines = Set(worker.stdout.split(separator: "\n").map { $0.replacingOccurrences(of: "   (", with: " (") })
    #expect(workerLines.contains("coordinator = tcp://a.example:5555, tcp://b.example:5555 (environment FARM_COORDINATOR)"), "\(worker.stdout)")
    #expect(
        workerLines.contains("slots = 3 (file \(workerFile.path))") && workerLines.contains("insecure = true (file \(workerFile.path))"),
        "\(worker.stdout)")

    // Values from the environment or the file are validated like flags, with one line.
    var bad = environment
    bad["FARM_HEARTBEAT"] = "0"
    let invalid = try runFarmCapturing(["coordinator", "--insecure", "--print-config"], environment: bad)
    #expect(invalid.status == 2 && invalid.stderr.contains("--heartbeat"), "\(invalid.stderr)")
    bad["FARM_HEARTBEAT"] = "1"
    bad["FARM_INSECURE"] = "maybe"
    let flag = try runFarmCapturing(["coordinator", "--print-config"], environment: bad)
    #expect(flag.status == 2 && flag.stderr.contains("insecure is a flag"), "\(flag.stderr)")
    var keyValue = environment
    keyValue["FARM_DATABASE"] = "host=db user=farm password=s3cret dbname=farm"
    let masked = try runFarmCapturing(["coordinator", "--insecure", "--print-config"], environment: keyValue)
    #expect(
        masked.stdout.contains("database = host=db user=farm password=*** dbname=farm") && !masked.stdout.contains("s3cret"),
        "\(masked.stdout)")
}

/// The daemons' settings file (`FARM_CONFIG`) and the CLI's server/token file (`FARM_CLI_CONFIG`) are set side by
/// side in one environment: each command reads its own and never fails on the other's keys.
@Test func daemonAndCLIConfigFilesHaveSeparateNames() throws {
    let daemonFile = try configFile("lease-seconds: 45\n")
    let cliFile = try configFile("server: http://127.0.0.1:9\ntoken: abc\n")
    defer {
        try? FileManager.default.removeItem(at: daemonFile)
        try? FileManager.default.removeItem(at: cliFile)
    }
    let environment = [
        "FARM_CONFIG": daemonFile.path, "FARM_CLI_CONFIG": cliFile.path,
        "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin",
    ]
    let daemon = try runFarmCapturing(["coordinator", "--insecure", "--print-config"], environment: environment)
    #expect(daemon.status == 0, "\(daemon.stderr)")
    #expect(daemon.stdout.contains("lease-seconds = 45   (file \(daemonFile.path))"), "\(daemon.stdout)")
    // The CLI reads its file (and so tries the server it names, which does not answer), not the daemons'.
    let cli = try runFarmCapturing(["jobs"], environment: environment)
    #expect(cli.status == 1 && cli.stderr.hasPrefix("farm: ") && !cli.stderr.contains("unknown key"), "\(cli.stderr)")
}
