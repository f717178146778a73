import ArgumentParser
import Foundation
import Yams

/// The options every daemon has for its settings; `DaemonSettings` acts on them before parsing.
struct DaemonSettingsOptions: ParsableArguments {
    @Option(
        help:
            "A YAML file of settings (`lease-seconds: 30`); flags and FARM_… variables (FARM_LEASE_SECONDS) take precedence over it. Also FARM_CONFIG."
    )
    var config: String?

    @Flag(help: "Print every setting, its value and where it came from (flag, environment, file, default; passwords masked), then exit.")
    var printConfig = false
}

/// A daemon's settings from three places, in this order of precedence: its command-line flags,
/// `FARM_…` environment variables (`--lease-seconds` is `FARM_LEASE_SECONDS`; lists separated by
/// commas; flags `true`/`false`) and a YAML config file (`--config FILE`: `lease-seconds: 30`,
/// `coordinator: [tcp://a:5555, tcp://b:5555]`). What the flags lack is filled in as if given
/// on the command line, so ArgumentParser validates every value the same way.
struct DaemonSettings {
    /// One option of the command, as its help lists it.
    struct Setting {
        /// The long name without dashes.
        let name: String
        /// False for flags.
        let takesValue: Bool
        /// The default the help shows, if any.
        let defaultValue: String?
        /// Whether it may be given several times.
        let repeatable: Bool
        /// Whether its value may hold a secret (a database password), masked when printed.
        var secret: Bool { name == "database" }
        /// Whether its whole value is a secret (a token), printed as `***`.
        var wholeSecret: Bool { name == "model-token" }
        /// Its environment variable.
        var environmentName: String { "FARM_" + name.uppercased().replacingOccurrences(of: "-", with: "_") }
    }

    /// The arguments for ArgumentParser: the command line's, then every setting it lacks.
    let arguments: [String]
    /// Each setting's value and where it came from, secrets masked, for `--print-config`.
    let report: [String]
    /// Whether `--print-config` was given.
    let printConfig: Bool

    /// Options every daemon has that are not settings.
    static let ignored: Set<String> = ["help", "config", "print-config"]

    /// The settings of `command`, read from ArgumentParser's structured description of it (the JSON that
    /// `--experimental-dump-help` prints), so they cannot drift from its options.
    static func settings(of command: ParsableCommand.Type) -> [Setting] {
        guard let info = try? JSONDecoder().decode(ToolInfo.self, from: Data(command._dumpHelp().utf8)) else {
            preconditionFailure("ArgumentParser's description of \(command) does not decode")
        }
        return (info.command.arguments ?? []).compactMap { argument in
            guard argument.kind != "positional", let name = argument.names?.first(where: { $0.kind == "long" })?.name,
                !ignored.contains(name)
            else { return nil }
            return Setting(
                name: name, takesValue: argument.kind == "option", defaultValue: argument.defaultValue,
                repeatable: argument.isRepeating)
        }
    }

    /// The part of ArgumentParser's `ToolInfoV0` the settings need.
    private struct ToolInfo: Decodable {
        struct Command: Decodable { var arguments: [Argument]? }
        struct Argument: Decodable {
            struct Name: Decodable {
                var kind: String
                var name: String
            }
            var kind: String
            var names: [Name]?
            var isRepeating: Bool
            var defaultValue: String?
        }
        var command: Command
    }

    /// Resolves `arguments` (after the command's name) for `command` against `environment`
    /// and the config file the arguments or the environment (`FARM_CONFIG`) name.
    init(_ arguments: [String], for command: ParsableCommand.Type, environment: [String: String]) throws {
        let settings = DaemonSettings.settings(of: command)
        var given: Set<String> = []
        var configPath = environment["FARM_CONFIG"]
        var printConfig = false
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--print-config" { printConfig = true }
            if argument == "--config", index + 1 < arguments.count { configPath = arguments[index + 1] }
            if argument.hasPrefix("--config=") { configPath = String(argument.dropFirst("--config=".count)) }
            if argument.hasPrefix("--") {
                let name = String(argument.dropFirst(2).prefix { $0 != "=" })
                given.insert(name == "id" ? "name" : name)
            }
            index += 1
        }
        let file = try configPath.map(DaemonSettings.readConfig) ?? [:]
        let names = Set(settings.map(\.name))
        if let unknown = file.keys.sorted().first(where: { !names.contains($0) }) {
            throw ValidationError("unknown setting \"\(unknown)\" in \(configPath!); settings: \(settings.map(\.name).joined(separator: ", "))")
        }
        var resolved = arguments
        var report: [String] = []
        for setting in settings {
            var values: [String] = []
            var source = "default"
            if given.contains(setting.name) {
                source = "flag"
                values = DaemonSettings.values(of: setting.name, in: arguments)
            } else if let text = environment[setting.environmentName] {
                source = "environment \(setting.environmentName)"
                values = setting.repeatable ? text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : [text]
            } else if let fromFile = file[setting.name] {
                source = "file \(configPath!)"
                values = fromFile
            }
            if source != "flag" && source != "default" {
                if setting.takesValue {
                    for value in values { resolved += ["--\(setting.name)", value] }
                } else {
                    switch values.first?.lowercased() {
                    case "true", "yes", "on", "1": resolved.append("--\(setting.name)")
                    case "false", "no", "off", "0": break
                    default: throw ValidationError("\(source): \(setting.name) is a flag: give true or false, not \"\(values.first ?? "")\"")
                    }
                }
            }
            let shown =
                source == "default"
                ? (setting.defaultValue ?? (setting.takesValue ? "(none)" : "false"))
                : setting.takesValue
                    ? values.map { setting.wholeSecret ? "***" : setting.secret ? DaemonSettings.masked($0) : $0 }.joined(separator: ", ")
                    : (source == "flag" ? "true" : values.first ?? "")
            report.append("\(setting.name) = \(shown)   (\(source))")
        }
        self.arguments = resolved
        self.report = report
        self.printConfig = printConfig
    }

    /// The values given for `--name` on the command line (`--name V` or `--name=V`); ["true"] for a flag.
    static func values(of name: String, in arguments: [String]) -> [String] {
        var values: [String] = []
        for (index, argument) in arguments.enumerated() {
            let names = name == "name" ? ["--name", "--id"] : ["--\(name)"]
            for option in names {
                if argument == option {
                    let next = index + 1 < arguments.count ? arguments[index + 1] : ""
                    values.append(next.hasPrefix("--") || next.isEmpty ? "true" : next)
                } else if argument.hasPrefix(option + "=") {
                    values.append(String(argument.dropFirst(option.count + 1)))
                }
            }
        }
        return values
    }

    /// The config file's settings: a YAML mapping of names to a value or a list of values.
    static func readConfig(_ path: String) throws -> [String: [String]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the config file \(path)")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw ValidationError("config file \(path): \(error)") }
        guard let node else { return [:] }
        guard let mapping = node.mapping else {
            throw ValidationError("config file \(path) must be a mapping of settings, such as `lease-seconds: 30`")
        }
        var settings: [String: [String]] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar.map(scalarText) else {
                throw ValidationError("config file \(path): setting names are plain words, such as `lease-seconds`")
            }
            switch value {
            case .scalar(let scalar): settings[name] = [scalarText(scalar)]
            case .sequence(let list):
                settings[name] = try list.map { item in
                    guard let scalar = item.scalar else {
                        throw ValidationError("config file \(path): \(name) lists values, not lists or mappings")
                    }
                    return scalarText(scalar)
                }
            case .mapping, .alias: throw ValidationError("config file \(path): settings take a value or a list, not a mapping")
            }
        }
        return settings
    }

    /// A YAML scalar as text, resolved as YAML reads it (`yes` is `true`, `0x10` is `16`), as the daemons' flags take it.
    static func scalarText(_ scalar: Node.Scalar) -> String {
        let node = Node.scalar(scalar)
        switch Tag.Name(rawValue: node.tag.rawValue) {
        case .bool: return node.bool.map(String.init) ?? scalar.string
        case .int: return node.int.map(String.init) ?? scalar.string
        case .float: return node.float.map { String($0) } ?? scalar.string
        default: return scalar.string
        }
    }

    /// A connection string or URI with its password replaced by `***`.
    static func masked(_ value: String) -> String {
        var text = value
        // URI: scheme://user:password@host
        if let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@"),
            let colon = text[scheme.upperBound..<at].firstIndex(of: ":")
        {
            text.replaceSubrange(text.index(after: colon)..<at, with: "***")
        }
        // Key/value: password=secret (up to the next space)
        if let range = text.range(of: "password=") {
            let end = text[range.upperBound...].firstIndex(of: " ") ?? text.endIndex
            text.replaceSubrange(range.upperBound..<end, with: "***")
        }
        return text
    }
}
