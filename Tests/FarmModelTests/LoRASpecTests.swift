import FarmModel
import Foundation
import Generation
import JobSpec
import Testing

/// Every spec format reads `loras` into the same task LoRAs; a bad entry names the field.
@Test func jobSpecsReadLoRAsInEveryFormat() throws {
    let expected = [TaskParameters.LoRA(name: "style", weight: 0.8), TaskParameters.LoRA(name: "detail", weight: 1)]
    let specs = [
        ("j.yaml", "model: m\nitems:\n  - prompt: a\n    loras: [{name: style, weight: 0.8}, {name: detail}]\n"),
        ("j.json", #"{"model": "m", "defaults": {"loras": [{"name": "style", "weight": 0.8}, "detail"]}, "items": [{"prompt": "a"}]}"#),
        ("j.jsonl", #"{"prompt": "a", "model": "m", "loras": [{"name": "style", "weight": 0.8}, {"name": "detail", "weight": 1}]}"#),
        ("j.csv", "prompt,model,loras\na,m,\"style:0.8,detail\"\n"),
    ]
    for (file, text) in specs {
        let spec = try JobSpec.parse(text, file: file)
        #expect(spec.tasks.map(\.loras) == [expected], "\(file)")
    }
    let text = try JobSpec.parse("a\n", file: "j.txt", overrides: ["model": "m", "loras": "style:0.8,detail"])
    #expect(text.tasks[0].loras == expected)
    #expect(try JobSpec.parse("prompt: a\n", file: "none.txt", overrides: ["model": "m"]).tasks[0].loras == nil)
    #expect(throws: JobSpecError.self) { try JobSpec.parse("model: m\nitems: [{prompt: a, loras: [{name: x, strength: 1}]}]", file: "bad.yaml") }
    #expect(throws: JobSpecError.self) { try JobSpec.parse("model: m\nitems: [{prompt: a, loras: \"x:20\"}]", file: "bad.yaml") }
    // They travel in the task's JSON as [{name, weight}] and back into the request.
    let json = try JSONEncoder().encode(text.tasks[0])
    let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
    let loras = object?["loras"] as? [[String: Any]]
    #expect(loras?.first?["name"] as? String == "style" && loras?.first?["weight"] as? Double == 0.8)
    #expect(GenerationRequest(text.tasks[0]).loras == [.init(name: "style", weight: 0.8), .init(name: "detail", weight: 1)])
}

/// The request checks its LoRAs and writes them, and the files' hashes, as the web UI does.
@Test func loraRequestsValidateAndWriteTheWebUIText() throws {
    var request = GenerationRequest(prompt: "a cat", model: "m")
    request.loras = [.init(name: "/loras/style.safetensors", weight: 0.8)]
    try request.validate()
    let hashes = AddOnHashes(
        loras: [.init(name: "style", hash: "0123456789ab")],
        embeddings: [.init(name: "neg:x,y", hash: "ba9876543210"), .init(name: "emb", hash: "aaaaaaaaaaaa")])
    let text = request.parametersText(width: 8, height: 8, hashes: hashes)
    #expect(text.hasPrefix("a cat <lora:style:0.8>\nSteps: "))
    #expect(text.hasSuffix(#", Model: m, Lora hashes: "style: 0123456789ab", TI hashes: "negxy: ba9876543210, emb: aaaaaaaaaaaa""#))
    for (bad, key) in [(GenerationRequest.LoRA(name: "a,b"), "loras[0].name"), (.init(name: "x", weight: .nan), "loras[0].weight")] {
        request.loras = [bad]
        #expect(throws: InvalidGenerationRequest.self) { try request.validate() }
        do { try request.validate() } catch let error as InvalidGenerationRequest { #expect(error.field.key == key) }
    }
    #expect(GenerationRequest.LoRA(parsing: "dir/x.safetensors:-0.5") == .init(name: "dir/x.safetensors", weight: -0.5))
    #expect(GenerationRequest.LoRA(parsing: "plain") == .init(name: "plain") && GenerationRequest.LoRA(parsing: " :1") == nil)
}
