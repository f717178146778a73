import FarmModel
import Foundation
import Yams

/// The line formats of a job spec: JSONL, CSV and plain text, one task a line.
extension JobSpec {
    /// The lines of `text`, whatever ends them: "\n", "\r\n" (one Character in Swift, so splitting on "\n" alone
    /// would leave a CRLF file as one line) or "\r".
    static func lines(of text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    }

    static func parseLines(_ text: String, file: String, overrides: [String: String], csv: Bool, directory: String?) throws -> JobSpec {
        let defaults = overrides.filter { taskFields.contains($0.key) }
        var tasks: [TaskParameters] = []
        var header: [String]?
        let decoder = JSONDecoder()
        for (offset, raw) in lines(of: text).enumerated() {
            let lineNumber = offset + 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            var fields = defaults
            if csv {
                let cells = try csvCells(line, file: file, line: lineNumber)
                guard let columns = header else {
                    for column in cells where !taskFields.contains(column) {
                        throw JobSpecError(
                            file: file, line: lineNumber, field: column,
                            message: "unknown column; known: \(taskFields.sorted().joined(separator: ", "))")
                    }
                    header = cells
                    continue
                }
                guard cells.count == columns.count else {
                    throw JobSpecError(file: file, line: lineNumber, field: nil, message: "has \(cells.count) cells; the header has \(columns.count)")
                }
                for (column, cell) in zip(columns, cells) where !cell.isEmpty { fields[column] = cell }
            } else {
                guard let object = try? decoder.decode([String: JSONValue].self, from: Data(line.utf8)) else {
                    throw JobSpecError(file: file, line: lineNumber, field: nil, message: "not a JSON object")
                }
                for (key, value) in object.sorted(by: { $0.key < $1.key }) {
                    guard taskFields.contains(key) else {
                        throw JobSpecError(
                            file: file, line: lineNumber, field: key, message: "unknown field; known: \(taskFields.sorted().joined(separator: ", "))")
                    }
                    if key == "loras" {
                        fields[key] = try loraList(value, file: file, line: lineNumber)
                        continue
                    }
                    if listFields.contains(key), case .array(let items) = value {
                        guard let texts = Optional(items.compactMap(\.text)), texts.count == items.count else {
                            throw JobSpecError(file: file, line: lineNumber, field: key, message: "list items must be strings or numbers")
                        }
                        fields[key] = listText(texts)
                        continue
                    }
                    guard let text = value.text else {
                        throw JobSpecError(file: file, line: lineNumber, field: key, message: "must be a string or a number")
                    }
                    fields[key] = text
                }
            }
            tasks.append(try task(fields, file: file, line: lineNumber, index: tasks.count, directory: directory))
            if tasks.count > maxTasks { throw JobSpecError(file: file, line: lineNumber, field: nil, message: "more than \(maxTasks) tasks") }
        }
        guard !tasks.isEmpty else { throw JobSpecError(file: file, line: nil, field: nil, message: "no tasks") }
        return JobSpec(name: overrides["name"] ?? (file as NSString).lastPathComponent, model: overrides["model"] ?? tasks[0].model, tasks: tasks)
    }

    /// Splits one CSV line (RFC 4180 quoting, no line breaks inside cells).
    static func csvCells(_ line: String, file: String, line lineNumber: Int) throws -> [String] {
        var cells: [String] = []
        var cell = ""
        var quoted = false
        var previousQuote = false
        for character in line {
            if quoted {
                if character == "\"" {
                    quoted = false
                    previousQuote = true
                } else {
                    cell.append(character)
                }
            } else if character == "\"" {
                if previousQuote { cell.append("\"") }
                quoted = true
                previousQuote = false
            } else if character == "," {
                cells.append(cell.trimmingCharacters(in: .whitespaces))
                cell = ""
                previousQuote = false
            } else {
                cell.append(character)
                previousQuote = false
            }
        }
        guard !quoted else { throw JobSpecError(file: file, line: lineNumber, field: nil, message: "unclosed quote") }
        cells.append(cell.trimmingCharacters(in: .whitespaces))
        return cells
    }

    static func parseText(_ text: String, file: String, overrides: [String: String], directory: String?) throws -> JobSpec {
        let defaults = overrides.filter { taskFields.contains($0.key) }
        var tasks: [TaskParameters] = []
        for (offset, raw) in lines(of: text).enumerated() {
            let prompt = raw.trimmingCharacters(in: .whitespaces)
            if prompt.isEmpty || prompt.hasPrefix("#") { continue }
            var fields = defaults
            fields["prompt"] = prompt
            if fields["seed"] == nil { fields["seed"] = String(tasks.count) }
            tasks.append(try task(fields, file: file, line: offset + 1, index: tasks.count, directory: directory))
            if tasks.count > maxTasks { throw JobSpecError(file: file, line: offset + 1, field: nil, message: "more than \(maxTasks) tasks") }
        }
        guard !tasks.isEmpty else { throw JobSpecError(file: file, line: nil, field: nil, message: "no prompts") }
        return JobSpec(name: overrides["name"] ?? (file as NSString).lastPathComponent, model: tasks[0].model, tasks: tasks)
    }
}
