import FarmModel
import Foundation
import JobSpec
import Testing

/// Input images in specs: paths relative to the spec file, stored images' SHA-256s, and the img2img batch over a
/// folder with masks matched by name.
@Suite struct JobSpecInputsTests {
    let folder: URL

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("spec-inputs-\(UUID())")
        for sub in ["in", "masks"] {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for name in ["b.png", "a.png", "c.png"] {
            try Data([1]).write(to: folder.appendingPathComponent("in/\(name)"))
            try Data([2]).write(to: folder.appendingPathComponent("masks/\(name)"))
        }
        try Data([3]).write(to: folder.appendingPathComponent("in/notes.txt"))
    }

    @Test func pathsAreReadAgainstTheSpecsFolderAndHashesKept() throws {
        let hash = String(repeating: "ab", count: 32)
        let text = """
            name: edit
            model: m
            defaults: {strength: 0.6, mask_blur: 2, steps: 4}
            items:
              - {prompt: a, init_image: in/a.png, mask: masks/a.png}
              - {prompt: b, init_image: \(hash), outpaint: [8, 0, 16, 0], upscaler: 4x-compact, upscale_by: 2}
              - {prompt: c, init_image: in/c.png, controlnet: canny, control_image: in/c.png, control_scale: 0.5, require: [gpu, big]}
            """
        var spec = try JobSpec.parse(text, file: "edit.yaml", directory: folder.path)
        #expect(spec.tasks[0].initImage == folder.path + "/in/a.png" && spec.tasks[0].mask == folder.path + "/masks/a.png")
        #expect(spec.tasks[0].strength == 0.6 && spec.tasks[0].maskBlur == 2)
        #expect(spec.tasks[1].initImage == hash && spec.tasks[1].outpaint == [8, 0, 16, 0])
        #expect(spec.tasks[1].upscaler == "4x-compact" && spec.tasks[1].upscaleBy == 2 && spec.tasks[0].upscaler == nil)
        #expect(spec.tasks[2].controlnets == [.init(model: "canny", image: folder.path + "/in/c.png", scale: 0.5)])
        #expect(spec.tasks[2].require == ["gpu", "big"])
        #expect(spec.inputPaths == ["/in/a.png", "/masks/a.png", "/in/c.png"].map { folder.path + $0 })
        var asked: [String] = []
        try spec.resolveInputs { path in
            asked.append(path)
            return String(repeating: String(asked.count), count: 64)
        }
        #expect(asked.count == 3, "each file is stored once")
        #expect(spec.tasks[0].initImage == String(repeating: "1", count: 64) && spec.tasks[0].mask == String(repeating: "2", count: 64))
        #expect(spec.tasks[2].initImage == String(repeating: "3", count: 64) && spec.tasks[2].controlnets?[0].image == spec.tasks[2].initImage)
        #expect(spec.inputPaths.isEmpty)
        for task in spec.tasks { try task.validate() }
        // The resolved job travels as `tasks` JSON and reads back the same.
        let back = try JobSpec.parse(String(decoding: try spec.submittedTasks(), as: UTF8.self), file: "spec.tasks")
        #expect(back.tasks == spec.tasks && back.name == "edit" && back.model == "m")
    }

    @Test func aFolderMakesOneTaskPerImageWithItsMask() throws {
        let text = """
            name: batch
            model: m
            init_images: in/
            masks: masks
            defaults: {prompt: "a fox", strength: 0.5, steps: 3, seed: 7}
            """
        let spec = try JobSpec.parse(text, file: "batch.yaml", directory: folder.path)
        #expect(spec.tasks.map(\.initImage) == ["a", "b", "c"].map { folder.path + "/in/\($0).png" })
        #expect(spec.tasks.map(\.mask) == ["a", "b", "c"].map { folder.path + "/masks/\($0).png" })
        #expect(spec.tasks.allSatisfy { $0.prompt == "a fox" && $0.strength == 0.5 && $0.seed == 7 })
        // With a sweep: every image × every row.
        let swept = try JobSpec.parse(text + "\nsweep: {seed: [1, 2]}", file: "batch.yaml", directory: folder.path)
        #expect(swept.tasks.count == 6 && swept.tasks.map(\.seed) == [1, 2, 1, 2, 1, 2])
    }

    @Test func badInputsAreOneLine() throws {
        func failure(_ text: String, directory: String?) -> String? {
            do {
                _ = try JobSpec.parse(text, file: "bad.yaml", directory: directory)
                return nil
            } catch { return "\(error)" }
        }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("masks/b.png"))
        let cases: [(String, String?, String)] = [
            ("name: j\nmodel: m\ninit_images: in\nmasks: masks\ndefaults: {prompt: p}", folder.path, "bad.yaml: masks: no mask named b.png"),
            ("name: j\nmodel: m\ninit_images: nowhere\ndefaults: {prompt: p}", folder.path, "bad.yaml: init_images: cannot read the folder"),
            ("name: j\nmodel: m\ninit_images: in\ndefaults: {prompt: p}", nil, "bad.yaml: init_images: a folder is read by `farm submit`"),
            (
                "name: j\nmodel: m\nitems: [{prompt: p, init_image: in/a.png}]", nil,
                "bad.yaml:3: init_image: must be the SHA-256 of an uploaded image"
            ),
            ("name: j\nmodel: m\nmasks: masks\nitems: [{prompt: p}]", folder.path, "bad.yaml:3: masks: needs init_images"),
            ("name: j\nmodel: m\nitems: [{prompt: p, outpaint: [1, 2]}]", nil, "bad.yaml:3: outpaint: must be four pixel counts"),
            ("name: j\nmodel: m\nitems: [{prompt: p, upscale_by: 2}]", nil, "bad.yaml:3: upscale_by: needs an upscaler"),
            ("name: j\nmodel: m\nitems: [{prompt: p, width: 512, upscaler: u, upscale_by: 8}]", nil, "bad.yaml:3: upscale_by: makes a side of 4096"),
            ("name: j\nmodel: m\nitems: [{prompt: p, control_image: in/a.png}]", folder.path, "bad.yaml:3: controlnet: required with control_image"),
            (
                "name: j\nmodel: m\nitems: [{prompt: p, require: [gpu, \(String(repeating: "t", count: 201))]}]", nil,
                "bad.yaml:3: require[1]: a tag is 1...200 bytes"
            ),
        ]
        for (text, directory, expected) in cases {
            let message = failure(text, directory: directory)
            #expect(message?.hasPrefix(expected) == true, "\(message ?? "no error") ← \(text.replacingOccurrences(of: "\n", with: "; "))")
        }
        // JSONL lines take the same fields, lists included.
        let lines = try JobSpec.parse(
            #"{"prompt": "p", "model": "m", "init_image": "in/a.png", "outpaint": [0, 8, 0, 8], "require": ["gpu"]}"#, file: "j.jsonl",
            directory: folder.path)
        #expect(lines.tasks[0].outpaint == [0, 8, 0, 8] && lines.tasks[0].require == ["gpu"] && lines.inputPaths == [folder.path + "/in/a.png"])
    }
}
