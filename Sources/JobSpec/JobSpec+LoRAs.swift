import FarmModel
import Foundation
import Generation
import Yams

/// A task's `loras`: `[{name, weight}]` in YAML, JSON and JSONL; `NAME:WEIGHT,NAME:WEIGHT` in a CSV cell, a query
/// parameter or a command-line override. Every form becomes that one text among a row's fields, parsed once by `task`.
extension JobSpec {
    /// The LoRA list of a YAML/JSON node (a list of `{name, weight}` mappings or `NAME:WEIGHT` strings, or one such
    /// string) as `NAME:WEIGHT,…` text.
    static func loraList(_ node: Node, file: String, field: String) throws -> String {
        func fail(_ node: Node, _ message: String) -> JobSpecError { JobSpecError(file: file, line: line(node), field: field, message: message) }
        if let text = node.scalar?.string { return text }
        guard let items = node.sequence else { throw fail(node, "must be a list of {name, weight}") }
        return try items.map { item in
            if let text = item.scalar?.string { return text }
            guard let mapping = item.mapping else { throw fail(item, "each LoRA must be {name, weight} or \"NAME:WEIGHT\"") }
            var name: String?
            var weight = "1"
            for (key, value) in mapping {
                guard let text = value.scalar?.string else { throw fail(value, "name and weight must be single values") }
                switch key.string {
                case "name": name = text
                case "weight": weight = text
                default: throw fail(key, "unknown LoRA field \(key.string ?? "?"); known: name, weight")
                }
            }
            guard let name else { throw fail(item, "each LoRA needs a name") }
            return "\(name):\(weight)"
        }.joined(separator: ",")
    }

    /// The LoRA list of a JSONL value (an array of `{name, weight}` objects or `NAME:WEIGHT` strings, or one such
    /// string) as `NAME:WEIGHT,…` text.
    static func loraList(_ value: JSONValue, file: String, line: Int) throws -> String {
        func fail(_ message: String) -> JobSpecError { JobSpecError(file: file, line: line, field: "loras", message: message) }
        if case .string(let text) = value { return text }
        guard case .array(let items) = value else { throw fail("must be a list of {name, weight}") }
        return try items.map { item in
            if case .string(let text) = item { return text }
            guard case .object(let object) = item, case .string(let name)? = object["name"] else {
                throw fail("each LoRA must be {\"name\": …, \"weight\": …}")
            }
            if let unknown = object.keys.first(where: { $0 != "name" && $0 != "weight" }) {
                throw fail("unknown LoRA field \(unknown); known: name, weight")
            }
            guard let weight = object["weight"].map({ $0.text }) ?? "1" else { throw fail("weight must be a number") }
            return "\(name):\(weight)"
        }.joined(separator: ",")
    }

    /// Parses `NAME[:WEIGHT],…` into a task's LoRAs (empty text: none); a bad entry names the field.
    static func loras(_ text: String, file: String, line: Int?) throws -> [TaskParameters.LoRA]? {
        let entries = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !entries.isEmpty else { return nil }
        return try entries.enumerated().map { index, entry in
            guard let lora = GenerationRequest.LoRA(parsing: entry) else {
                throw JobSpecError(
                    file: file, line: line, field: "loras[\(index)]", message: "must be NAME or NAME:WEIGHT, got \"\(entry.prefix(40))\"")
            }
            return TaskParameters.LoRA(name: lora.name, weight: lora.weight)
        }
    }
}
