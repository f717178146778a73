import FarmModel
import Foundation
import JobSpec
import Testing

let foxes = """
    name: foxes
    model: tiny-sd          # a model name the workers hold
    defaults: {steps: 10, cfg: 7, sampler: euler_a, width: 32, height: 32}
    sweep:
      prompt: ["a red fox in the snow", "a castle at night", "a bowl of soup"]
      seed: "1-4"
    """

@Test func theIssuesExampleMakesTwelveTasks() throws {
    let spec = try JobSpec.parse(foxes, file: "foxes.yaml")
    #expect(spec.name == "foxes" && spec.model == "tiny-sd")
    #expect(spec.tasks.count == 12)
    #expect(spec.tasks.map(\.seed) == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4])
    #expect(spec.tasks[4].prompt == "a castle at night")
    #expect(
        spec.tasks.allSatisfy {
            $0.steps == 10 && $0.cfgScale == 7 && $0.sampler == "euler_a" && $0.width == 32 && $0.height == 32 && $0.model == "tiny-sd"
        })
}

@Test func everyFormatParses() throws {
    let json = #"{"name": "j", "model": "m", "defaults": {"steps": 4}, "items": [{"prompt": "a", "seed": 5}, {"prompt": "b", "cfg": 3.5}]}"#
    let fromJSON = try JobSpec.parse(json, file: "job.json")
    #expect(fromJSON.tasks.map(\.prompt) == ["a", "b"] && fromJSON.tasks[0].seed == 5 && fromJSON.tasks[1].cfgScale == 3.5)
    let sweep = try JobSpec.parse("model: m\nsweep: {prompt: [a, b], cfg: [5, 7], sampler: [euler, ddim], model: [m, n]}", file: "s.yml")
    #expect(sweep.tasks.count == 16)
    #expect(sweep.tasks[1].model == "n" && sweep.tasks[2].sampler == "ddim" && sweep.tasks[4].cfgScale == 7 && sweep.tasks[8].prompt == "b")
    let jsonl = try JobSpec.parse(
        #"{"prompt": "x", "seed": 1}\n\n{"prompt": "y", "steps": 3}"#.replacingOccurrences(of: "\\n", with: "\n"),
        file: "t.jsonl", overrides: ["model": "m", "width": "64", "height": "64"])
    #expect(jsonl.tasks.count == 2 && jsonl.tasks[1].steps == 3 && jsonl.tasks[0].width == 64)
    let csv = try JobSpec.parse("prompt,seed,cfg\n\"a, quoted \"\"fox\"\"\",7,4\nplain,8,\n", file: "t.csv", overrides: ["model": "m"])
    #expect(csv.tasks.map(\.prompt) == ["a, quoted \"fox\"", "plain"] && csv.tasks[0].cfgScale == 4 && csv.tasks[1].cfgScale == 7.5)
    let text = try JobSpec.parse("# comment\na fox\n\na castle\n", file: "prompts.txt", overrides: ["model": "m", "steps": "8"])
    #expect(text.tasks.map(\.prompt) == ["a fox", "a castle"] && text.tasks.map(\.seed) == [0, 1] && text.tasks[0].steps == 8)
}

/// Each bad spec is one error naming file, line and field.
@Test(arguments: [
    ("bad.yaml", "name: x\nmodel: m\nsweep: {prompt: [a]}\ncolour: red\n", "bad.yaml:4: colour: unknown field"),
    ("bad.yaml", "model: m\nitems:\n  - {prompt: a, steps: many}\n", "steps: must be an integer"),
    ("bad.yaml", "model: m\ndefaults: {steps: -3}\nsweep: {prompt: [a]}\n", "steps: must be 1...500, got -3"),
    ("bad.yaml", "model: m\nitems: [{prompt: a, width: 0}]\n", "width: must be a multiple of 8"),
    ("bad.yaml", "name: x\nsweep: {prompt: [a]}\n", "model: required"),
    ("bad.yaml", "model: m\nitems: [{prompt: a}]\n  bad: [\n", "not valid YAML/JSON"),
    ("bad.yaml", "model: m\nsweep: {prompt: [a], seed: 9-2}\n", "sweep.seed: must be a list of seeds or a range"),
    ("bad.yaml", "model: m\nsweep: {colour: [red]}\n", "sweep.colour: cannot be swept"),
    ("bad.yaml", "model: m\nitems: [{negative: x}]\n", "prompt: required"),
    ("bad.jsonl", "{\"prompt\": \"a\", \"nope\": 1}\n", "bad.jsonl:1: nope: unknown field"),
    ("bad.csv", "prompt,size\na,1\n", "bad.csv:1: size: unknown column"),
    ("bad.json", "[1, 2]", "must be a mapping"),
    ("bad.yaml", "model: m\nitems: [{prompt: a, refiner: r, refiner_switch: 1.5}]\n", "bad.yaml:2: refiner_switch: must be in (0, 1)"),
    ("bad.yaml", "model: m\nitems: [{prompt: a, refiner_switch: 0.5}]\n", "refiner_switch: needs a refiner"),
    ("bad.yaml", "model: m\nitems: [{prompt: a, refiner: r, refiner_switch: soon}]\n", "refiner_switch: must be a number"),
    ("bad.jsonl", "{\"prompt\": \"a\", \"vae\": \"\"}\n", "bad.jsonl:1: vae: must name a VAE"),
])
func badSpecsAreOneLineErrors(_ file: String, _ text: String, _ expected: String) {
    do {
        _ = try JobSpec.parse(text, file: file, overrides: file.hasSuffix(".yaml") || file.hasSuffix(".json") ? [:] : ["model": "m"])
        Issue.record("\(expected): accepted")
    } catch let error as JobSpecError {
        #expect(error.description.contains(expected), "\(error.description)")
        #expect(!error.description.contains("\n"))
    } catch {
        Issue.record("unexpected \(error)")
    }
}

@Test func hugePromptsAndHugeSweepsAreRefused() {
    let big = String(repeating: "x", count: 10 << 20)
    #expect(throws: JobSpecError.self) { try JobSpec.parse("model: m\nitems: [{prompt: \"\(big)\"}]\n", file: "big.yaml") }
    let previous = JobSpec.maxTasks
    #expect(throws: JobSpecError.self) { try JobSpec.parse("model: m\nsweep: {prompt: [a, b], seed: \"1-\(previous)\"}\n", file: "huge.yaml") }
}

/// Specs written on Windows end their lines with CRLF, which Swift reads as one Character: every line-based
/// format must still split into lines (and report the right line numbers).
@Test func specsWithCRLFLineEndingsSplitIntoLines() throws {
    let text = try JobSpec.parse(
        "a red fox\r\n# a comment\r\na castle at night\r\n\r\na bowl of soup", file: "p.txt",
        overrides: ["model": "m"])
    #expect(text.tasks.map(\.prompt) == ["a red fox", "a castle at night", "a bowl of soup"])
    let csv = try JobSpec.parse("prompt,seed,steps\r\n\"a fox, red\",5,3\r\na castle,6,4\r\n", file: "j.csv", overrides: ["model": "m"])
    #expect(csv.tasks.map(\.prompt) == ["a fox, red", "a castle"] && csv.tasks.map(\.seed) == [5, 6] && csv.tasks.map(\.steps) == [3, 4])
    let jsonl = try JobSpec.parse(
        "{\"prompt\": \"a\", \"seed\": 1}\r\n{\"prompt\": \"b\", \"seed\": 2}\r\n", file: "j.jsonl",
        overrides: ["model": "m"])
    #expect(jsonl.tasks.map(\.prompt) == ["a", "b"] && jsonl.tasks.map(\.seed) == [1, 2])
    let yaml = try JobSpec.parse("model: m\r\nitems:\r\n  - {prompt: a}\r\n  - {prompt: b}\r\n", file: "j.yaml")
    #expect(yaml.tasks.map(\.prompt) == ["a", "b"])
    // Old Mac line ends too, and a bad line is still named by its number.
    #expect(try JobSpec.parse("x\ry", file: "p.txt", overrides: ["model": "m"]).tasks.count == 2)
    #expect {
        try JobSpec.parse("prompt,seed\r\na,1\r\nb,zz\r\n", file: "j.csv", overrides: ["model": "m"])
    } throws: { "\($0)".contains("j.csv:3") }
}

/// The refiner, its switch and the VAE in every format, as defaults, items, sweeps, columns and flag overrides.
@Test func refinerAndVAEInEveryFormat() throws {
    let yaml = try JobSpec.parse(
        """
        model: sdxl
        defaults: {refiner: sdxl-refiner, vae: sdxl-vae, width: 1024, height: 1024}
        items: [{prompt: a}, {prompt: b, refiner_switch: 0.7, vae: other-vae}]
        sweep: {prompt: [c], refiner_switch: [0.6, 0.9]}
        """, file: "x.yaml")
    #expect(yaml.tasks.map(\.refiner) == Array(repeating: "sdxl-refiner", count: 4))
    #expect(yaml.tasks.map(\.refinerSwitch) == [nil, 0.7, 0.6, 0.9])
    #expect(yaml.tasks.map(\.vae) == ["sdxl-vae", "other-vae", "sdxl-vae", "sdxl-vae"])
    let json = try JobSpec.parse(
        #"{"model": "m", "items": [{"prompt": "a", "refiner": "r", "refiner_switch": 0.75, "vae": "v"}]}"#, file: "x.json")
    #expect(json.tasks[0].refiner == "r" && json.tasks[0].refinerSwitch == 0.75 && json.tasks[0].vae == "v")
    let jsonl = try JobSpec.parse(#"{"prompt": "a", "refiner": "r", "refiner_switch": 0.5}"#, file: "x.jsonl", overrides: ["model": "m", "vae": "v"])
    #expect(jsonl.tasks[0].refiner == "r" && jsonl.tasks[0].refinerSwitch == 0.5 && jsonl.tasks[0].vae == "v")
    let csv = try JobSpec.parse("prompt,refiner,refiner_switch,vae\na,r,0.85,v\nb,,,\n", file: "x.csv", overrides: ["model": "m"])
    #expect(csv.tasks.map(\.refiner) == ["r", nil] && csv.tasks.map(\.refinerSwitch) == [0.85, nil] && csv.tasks.map(\.vae) == ["v", nil])
    let text = try JobSpec.parse("a fox\n", file: "x.txt", overrides: ["model": "m", "refiner": "r", "refiner_switch": "0.6"])
    #expect(text.tasks[0].refiner == "r" && text.tasks[0].refinerSwitch == 0.6 && text.tasks[0].vae == nil)
    // Without them a task carries none, and its JSON has no such keys (older workers read it unchanged).
    let plain = try JobSpec.parse("a fox\n", file: "x.txt", overrides: ["model": "m"]).tasks[0]
    #expect(plain.refiner == nil && plain.refinerSwitch == nil && plain.vae == nil)
    let encoded = String(decoding: try JSONEncoder().encode(plain), as: UTF8.self)
    #expect(!encoded.contains("refiner") && !encoded.contains("vae"))
    let keyed = String(decoding: try JSONEncoder().encode(json.tasks[0]), as: UTF8.self)
    #expect(keyed.contains(#""refiner":"r""#) && keyed.contains(#""refiner_switch":0.75"#) && keyed.contains(#""vae":"v""#))
}
