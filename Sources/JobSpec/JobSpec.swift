// Module JobSpec: job spec files (YAML, JSON, JSONL, CSV, text) into tasks. Imports FarmModel and Yams.

import FarmModel
import Foundation
import Yams

/// A bad job spec: one line naming the file, the line (where known) and the field.
public struct JobSpecError: Error, CustomStringConvertible, Equatable {
    /// The spec file (or "<input>").
    public var file: String
    /// 1-based line, when the format has lines.
    public var line: Int?
    /// The field concerned, as the user wrote it.
    public var field: String?
    /// What is wrong and what is allowed.
    public var message: String

    /// `file:line: field: message`, in one line.
    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let field { place += ": \(field)" }
        return "\(place): \(message)"
    }
}

/// A job as a user writes it by hand, expanded into tasks: YAML or JSON with defaults and
/// a list of items and/or a sweep (the cartesian product of prompts × seeds × cfg ×
/// samplers × models, seeds and subseeds also as ranges like "1-1000"); JSONL (one task per line);
/// CSV with a header; or plain text, one prompt per line.
public struct JobSpec: Sendable {
    /// The job's name.
    public var name: String
    /// The model most tasks use (the job's label; each task names its own).
    public var model: String
    /// Scheduling priority (higher first).
    public var priority = 0
    /// Attempts per task before it fails.
    public var maxAttempts = 3
    /// Seconds after the job finishes that retention may remove its tasks, images and events (`expires_after`).
    public var expiresAfter: Double?
    /// Where the job's end is POSTed (`notify`).
    public var notify: String?
    /// The tasks, in order.
    public var tasks: [TaskParameters]

    /// A job of `tasks` (priority 0, three attempts each).
    public init(name: String, model: String, tasks: [TaskParameters]) {
        self.name = name
        self.model = model
        self.tasks = tasks
    }

    /// Fields a task (or `defaults`) may set, with the spelling users write.
    static let taskFields = Set<String>([
        "prompt", "negative", "negative_prompt", "model", "width", "height", "steps",
        "cfg", "cfg_scale", "sampler", "seed", "clip_skip", "strength", "refiner", "refiner_switch", "vae", "init_image",
        "loras", "mask", "mask_blur", "outpaint", "controlnet", "control_image", "control_scale", "require", "upscaler", "upscale_by",
    ]).union(finishingFields)
    /// Task fields whose value is a list (a YAML/JSON list or comma-separated text).
    static let listFields: Set<String> = ["outpaint", "require"]
    /// Keys a sweep may vary.
    static let sweepFields =
        [
            "prompt", "negative", "seed", "cfg", "sampler", "model", "steps", "width", "height", "refiner", "refiner_switch", "vae",
        ] + finishingSweepFields
    /// Top-level keys of a YAML/JSON spec.
    static let specFields: Set<String> = [
        "name", "model", "defaults", "sweep", "items", "priority", "max_attempts", "init_images", "masks", "expires_after", "notify",
    ]

    /// Most tasks one spec may make.
    public static let maxTasks = Limits().maxTasksPerJob

    /// Parses a spec; the format follows the file extension (.yaml/.yml/.json, .jsonl, .csv, anything else: text).
    /// `overrides` (from command-line flags) fill what the spec leaves out: name, model and task fields. `directory`
    /// is the spec file's folder, against which input image paths are read (nil: inputs must be stored images'
    /// SHA-256s, as over the HTTP API).
    public static func parse(_ text: String, file: String, overrides: [String: String] = [:], directory: String? = nil) throws -> JobSpec {
        let fileExtension = (file as NSString).pathExtension.lowercased()
        var spec: JobSpec
        switch fileExtension {
        case "yaml", "yml", "json": spec = try parseStructured(text, file: file, overrides: overrides, directory: directory)
        case "jsonl": spec = try parseLines(text, file: file, overrides: overrides, csv: false, directory: directory)
        case "csv": spec = try parseLines(text, file: file, overrides: overrides, csv: true, directory: directory)
        case "tasks": spec = try parseTasks(text, file: file)
        default: spec = try parseText(text, file: file, overrides: overrides, directory: directory)
        }
        // Flags fill what the spec leaves out, as they do for the name and the model.
        if spec.expiresAfter == nil, let text = overrides["expires_after"] {
            spec.expiresAfter = try jobField("expires_after", file: file, line: nil) { try RetentionPeriod.seconds(text, field: $0) }
        }
        if spec.notify == nil, let text = overrides["notify"] {
            spec.notify = try jobField("notify", file: file, line: nil) { try NotifyURL.validated(text, field: $0) }
        }
        return spec
    }

    /// The value `parse` makes of a job-level field, its `ValidationFailure` as a `JobSpecError` at `line`.
    static func jobField<T>(_ field: String, file: String, line: Int?, _ parse: (String) throws -> T) throws -> T {
        do { return try parse(field) } catch let failure as ValidationFailure {
            throw JobSpecError(file: file, line: line, field: field, message: failure.message)
        }
    }

    // MARK: - YAML / JSON

    static func parseStructured(_ text: String, file: String, overrides: [String: String], directory: String?) throws -> JobSpec {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw JobSpecError(file: file, line: nil, field: nil, message: "the spec is empty")
            }
            root = node
        } catch let error as JobSpecError {
            throw error
        } catch let error as YamlError {
            throw JobSpecError(file: file, line: yamlLine(error), field: nil, message: "not valid YAML/JSON: \(yamlMessage(error))")
        }
        guard let mapping = root.mapping else {
            throw JobSpecError(file: file, line: line(root), field: nil, message: "the spec must be a mapping with name, model and items or sweep")
        }
        var top: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string else { throw JobSpecError(file: file, line: line(key), field: nil, message: "keys must be strings") }
            guard specFields.contains(name) else {
                throw JobSpecError(
                    file: file, line: line(key), field: name,
                    message: "unknown field; known: \(specFields.sorted().joined(separator: ", "))")
            }
            top[name] = value
        }
        func scalar(_ name: String) throws -> String? {
            guard let node = top[name] else { return nil }
            guard let value = node.scalar?.string else {
                throw JobSpecError(file: file, line: line(node), field: name, message: "must be a single value")
            }
            return value
        }
        let name = try scalar("name") ?? overrides["name"] ?? (file as NSString).lastPathComponent
        guard let model = try scalar("model") ?? overrides["model"] else {
            throw JobSpecError(file: file, line: nil, field: "model", message: "required: the model the workers should use")
        }
        var defaults = overrides.filter { taskFields.contains($0.key) }
        defaults["model"] = model
        if let node = top["defaults"] {
            for (key, value) in try fields(node, file: file, section: "defaults") { defaults[key] = value }
        }
        var rows: [(fields: [String: String], line: Int?)] = []
        if let items = top["items"] {
            guard let sequence = items.sequence else { throw JobSpecError(file: file, line: line(items), field: "items", message: "must be a list") }
            // Counted before anything is expanded: YAML aliases make a short file a long list.
            guard sequence.count <= maxTasks else {
                throw JobSpecError(file: file, line: line(items), field: "items", message: "makes \(sequence.count) tasks; the limit is \(maxTasks)")
            }
            for item in sequence {
                rows.append((defaults.merging(try fields(item, file: file, section: "items"), uniquingKeysWith: { $1 }), line(item)))
            }
        }
        if let sweep = top["sweep"] {
            rows += try expandSweep(sweep, defaults: defaults, file: file, besides: rows.count)
        }
        if top["items"] == nil && top["sweep"] == nil {
            guard top["init_images"] != nil else {
                throw JobSpecError(file: file, line: nil, field: nil, message: "needs items, a sweep or init_images")
            }
            rows = [(defaults, nil)]
        }
        if let folder = try scalar("init_images") {
            rows = try batchRows(rows, initImages: folder, masks: try scalar("masks"), directory: directory, file: file)
        } else if top["masks"] != nil {
            throw JobSpecError(
                file: file, line: top["masks"].flatMap(line), field: "masks", message: "needs init_images (masks are matched by file name)")
        }
        var spec = JobSpec(name: name, model: model, tasks: [])
        if let value = try scalar("priority") {
            let range = Limits().priorities
            guard let priority = Int(value), range.contains(priority) else {
                throw JobSpecError(
                    file: file, line: line(top["priority"]!), field: "priority",
                    message: "must be an integer \(range.lowerBound)…\(range.upperBound)")
            }
            spec.priority = priority
        }
        if let value = try scalar("max_attempts") {
            guard let attempts = Int(value), (1...100).contains(attempts) else {
                throw JobSpecError(file: file, line: line(top["max_attempts"]!), field: "max_attempts", message: "must be 1...100")
            }
            spec.maxAttempts = attempts
        }
        if let value = try scalar("expires_after") {
            spec.expiresAfter = try jobField("expires_after", file: file, line: line(top["expires_after"]!)) {
                try RetentionPeriod.seconds(value, field: $0)
            }
        }
        if let value = try scalar("notify") {
            spec.notify = try jobField("notify", file: file, line: line(top["notify"]!)) { try NotifyURL.validated(value, field: $0) }
        }
        spec.tasks = try rows.enumerated().map { index, row in
            try task(row.fields, file: file, line: row.line, index: index, directory: directory)
        }
        return spec
    }

    static func line(_ node: Node) -> Int? { node.mark.map { $0.line } }

    static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func yamlMessage(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): return problem
        default: return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }

    /// A mapping of task fields, each a scalar, with unknown fields refused.
    static func fields(_ node: Node, file: String, section: String) throws -> [String: String] {
        guard let mapping = node.mapping else {
            throw JobSpecError(file: file, line: line(node), field: section, message: "must be a mapping of task fields")
        }
        var result: [String: String] = [:]
        for (key, value) in mapping {
            guard let name = key.string, taskFields.contains(name) else {
                throw JobSpecError(
                    file: file, line: line(key), field: "\(section).\(key.string ?? "?")",
                    message: "unknown field; known: \(taskFields.sorted().joined(separator: ", "))")
            }
            if name == "loras" {
                result[name] = try loraList(value, file: file, field: "\(section).loras")
                continue
            }
            if listFields.contains(name), let items = value.sequence {
                result[name] = try listText(
                    items.map { item in
                        guard let text = item.scalar?.string else {
                            throw JobSpecError(file: file, line: line(item), field: "\(section).\(name)", message: "list items must be single values")
                        }
                        return text
                    })
                continue
            }
            guard let text = value.scalar?.string else {
                throw JobSpecError(file: file, line: line(value), field: "\(section).\(name)", message: "must be a single value")
            }
            result[name] = text
        }
        return result
    }

    /// The cartesian product of the sweep's lists, in the order prompt × negative × seed × cfg × sampler × model × steps × size
    /// × refiner × refiner switch × VAE.
    static func expandSweep(_ node: Node, defaults: [String: String], file: String, besides items: Int = 0) throws
        -> [(fields: [String: String], line: Int?)]
    {
        guard let mapping = node.mapping else {
            throw JobSpecError(file: file, line: line(node), field: "sweep", message: "must be a mapping of lists")
        }
        var axes: [String: [String]] = [:]
        for (key, value) in mapping {
            guard let name = key.string, sweepFields.contains(name) else {
                throw JobSpecError(
                    file: file, line: line(key), field: "sweep.\(key.string ?? "?")",
                    message: "cannot be swept; sweepable: \(sweepFields.joined(separator: ", "))")
            }
            if let list = value.sequence {
                axes[name] = try list.map { item in
                    guard let text = item.scalar?.string else {
                        throw JobSpecError(file: file, line: line(item), field: "sweep.\(name)", message: "list items must be single values")
                    }
                    return text
                }
            } else if let text = value.scalar?.string {
                axes[name] = ["seed", "subseed"].contains(name) ? try seedRange(text, file: file, line: line(value), field: name) : [text]
            } else {
                throw JobSpecError(
                    file: file, line: line(value), field: "sweep.\(name)", message: "must be a list (or, for seed and subseed, a range like 1-1000)")
            }
            if axes[name]!.isEmpty { throw JobSpecError(file: file, line: line(value), field: "sweep.\(name)", message: "must not be empty") }
        }
        var total = 1
        for axis in axes.values {
            let (product, overflow) = total.multipliedReportingOverflow(by: axis.count)
            total = overflow ? Int.max : product
        }
        guard total <= maxTasks - items else {
            let what = items > 0 ? "with the \(items) items makes \(total > maxTasks ? "over \(maxTasks)" : String(total + items))" : "makes \(total)"
            throw JobSpecError(file: file, line: line(node), field: "sweep", message: "\(what) tasks; the limit is \(maxTasks)")
        }
        var rows: [[String: String]] = [defaults]
        for axis in sweepFields {
            guard let values = axes[axis] else { continue }
            rows = rows.flatMap { row in
                values.map { value in
                    var next = row
                    next[axis] = value
                    return next
                }
            }
        }
        return rows.map { ($0, line(node)) }
    }

    /// "1-1000" → "1" … "1000"; a single number → itself.
    static func seedRange(_ text: String, file: String, line: Int?, field: String = "seed") throws -> [String] {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.count == 1, UInt64(parts[0]) != nil { return [parts[0]] }
        guard parts.count == 2, let low = UInt64(parts[0]), let high = UInt64(parts[1]), low <= high, high - low < UInt64(maxTasks) else {
            throw JobSpecError(
                file: file, line: line, field: "sweep.\(field)", message: "must be a list of seeds or a range like 1-1000, got \"\(text)\"")
        }
        return (low...high).map(String.init)
    }

    /// One task from its fields (strings as written), validated; errors name the field.
    static func task(_ fields: [String: String], file: String, line: Int?, index: Int, directory: String? = nil) throws -> TaskParameters {
        func fail(_ field: String, _ message: String) -> JobSpecError {
            JobSpecError(file: file, line: line, field: field, message: message)
        }
        func int(_ name: String) throws -> Int? {
            guard let text = fields[name] else { return nil }
            guard let value = Int(text) else { throw fail(name, "must be an integer, got \"\(text.prefix(40))\"") }
            return value
        }
        func double(_ name: String) throws -> Double? {
            guard let text = fields[name] else { return nil }
            guard let value = Double(text) else { throw fail(name, "must be a number, got \"\(text.prefix(40))\"") }
            return value
        }
        guard let prompt = fields["prompt"] else { throw fail("prompt", "required for every task (task \(index))") }
        guard let model = fields["model"], !model.isEmpty else { throw fail("model", "required") }
        var task = TaskParameters(prompt: prompt, negativePrompt: fields["negative"] ?? fields["negative_prompt"] ?? "", model: model)
        if let value = try int("width") { task.width = value }
        if let value = try int("height") { task.height = value }
        if let value = try int("steps") { task.steps = value }
        if let value = try double("cfg") ?? double("cfg_scale") { task.cfgScale = value }
        if let value = fields["sampler"] { task.sampler = value }
        if let text = fields["seed"] {
            guard let seed = UInt64(text) else { throw fail("seed", "must be a whole number 0...\(Int64.max), got \"\(text.prefix(40))\"") }
            task.seed = seed
        }
        task.clipSkip = try int("clip_skip")
        task.strength = try double("strength")
        task.refiner = fields["refiner"]
        task.refinerSwitch = try double("refiner_switch")
        task.vae = fields["vae"]
        if let text = fields["loras"] { task.loras = try loras(text, file: file, line: line) }
        task.maskBlur = try double("mask_blur")
        if let text = fields["outpaint"] {
            let pixels = listItems(text).compactMap { Int($0) }
            guard pixels.count == 4, listItems(text).count == 4 else {
                throw fail("outpaint", "must be four pixel counts [left, right, top, bottom], got \"\(text.prefix(40))\"")
            }
            task.outpaint = pixels
        }
        if let text = fields["require"] { task.require = listItems(text).nilIfEmpty }
        (task.upscaler, task.upscaleBy) = (fields["upscaler"], try double("upscale_by"))
        try finishing(fields, into: &task, fail: fail)
        do {
            task.initImage = try fields["init_image"].map { try input($0, field: "init_image", directory: directory) }
            task.mask = try fields["mask"].map { try input($0, field: "mask", directory: directory) }
            if let image = fields["control_image"] {
                guard let model = fields["controlnet"] else { throw fail("controlnet", "required with control_image: the ControlNet's name") }
                task.controlnets = [
                    .init(
                        model: model, image: try input(image, field: "control_image", directory: directory),
                        scale: try double("control_scale") ?? 1)
                ]
            } else if fields["controlnet"] != nil {
                throw fail("control_image", "required with controlnet: the control image")
            }
            // Paths become stored images' SHA-256s later (`resolveInputs`); the rest is checked now.
            var checked = task
            checked.initImage = checked.initImage.map(Self.placeholderInput)
            checked.mask = checked.mask.map(Self.placeholderInput)
            checked.controlnets = checked.controlnets?.map { .init(model: $0.model, image: Self.placeholderInput($0.image), scale: $0.scale) }
            try checked.validate()
        } catch let failure as ValidationFailure {
            let field = ["cfg_scale": "cfg", "negative_prompt": "negative", "controlnets[0].image": "control_image"][failure.field] ?? failure.field
            throw fail(field, failure.message)
        }
        return task
    }

    /// A stored image's name as written, or a stand-in one for a path, for checking a task before its inputs are stored.
    static func placeholderInput(_ value: String) -> String {
        TaskParameters.isStoredImageName(value) ? value : String(repeating: "0", count: 64)
    }
}

extension Array {
    /// nil for an empty array.
    var nilIfEmpty: Self? { isEmpty ? nil : self }
}
