import Foundation
import StableDiffusion
import Tensors
import Testing

/// A web-UI prompt, a step count, and the schedule the web UI's `get_learned_conditioning_prompt_schedules` gives.
struct ScheduleCase: Sendable, CustomTestStringConvertible {
    let prompt: String
    let steps: Int
    let expected: [ScheduledText]
    var testDescription: String { "\(prompt) @ \(steps)" }

    init(_ prompt: String, _ steps: Int, _ expected: [(Int, String)]) {
        self.prompt = prompt
        self.steps = steps
        self.expected = expected.map { ScheduledText(endStep: $0.0, text: $0.1) }
    }
}

let scheduleTable: [ScheduleCase] = [
    ScheduleCase("a [cat:dog:0.5] photo", 10, [(5, "a cat photo"), (10, "a dog photo")]),
    ScheduleCase("a [cat:dog:4] photo", 10, [(4, "a cat photo"), (10, "a dog photo")]),
    ScheduleCase("[dog:0.3] park", 10, [(3, " park"), (10, "dog park")]),
    ScheduleCase("[cat::0.25] sofa", 8, [(2, "cat sofa"), (8, " sofa")]),
    ScheduleCase("[a|b] x", 3, [(1, "a x"), (2, "b x"), (3, "a x")]),
    ScheduleCase("[a|b|c]", 4, [(1, "a"), (2, "b"), (3, "c"), (4, "a")]),
    ScheduleCase("[a|]", 2, [(1, "a"), (2, "")]),
    ScheduleCase("[[red:blue:0.2]:green:0.6] car", 10, [(2, "red car"), (6, "blue car"), (10, "green car")]),
    ScheduleCase("(a [cat:dog:5]:1.2)", 10, [(5, "(a cat:1.2)"), (10, "(a dog:1.2)")]),
    ScheduleCase("plain text", 20, [(20, "plain text")]),
    ScheduleCase("[cat] (dog)", 20, [(20, "[cat] (dog)")]),
    ScheduleCase("[cat:dog]", 20, [(20, "[cat:dog]")]),
    ScheduleCase("[a:b:30] x", 20, [(20, "a x")]),
    ScheduleCase("[a:b:1.0]", 10, [(10, "a")]),
    ScheduleCase("[a:b: 0.5 ]", 10, [(5, "a"), (10, "b")]),
    ScheduleCase("[a:b:0]", 10, [(10, "b")]),
    ScheduleCase("\\[a:b:3\\]", 10, [(10, "\\[a:b:3\\]")]),
]

@Test(arguments: scheduleTable)
func promptScheduleMatchesTheWebUI(_ fixture: ScheduleCase) {
    #expect(PromptSchedule.schedule(fixture.prompt, steps: fixture.steps) == fixture.expected)
}

@Test func andSplitsWithWeightsAsTheWebUI() {
    #expect(ComposablePrompt.parts("a cat AND a dog:0.5") == [WeightedPrompt(text: "a cat"), WeightedPrompt(text: " a dog", weight: 0.5)])
    #expect(ComposablePrompt.parts("ANDROID AND cat") == [WeightedPrompt(text: "ANDROID"), WeightedPrompt(text: " cat")])
    #expect(ComposablePrompt.parts("x AND y :-1") == [WeightedPrompt(text: "x"), WeightedPrompt(text: " y", weight: -1)])
    #expect(ComposablePrompt.parts("(cat:1.2) AND dog") == [WeightedPrompt(text: "(cat:1.2)"), WeightedPrompt(text: " dog")])
    #expect(ComposablePrompt.parts("just one") == [WeightedPrompt(text: "just one")])
}

@Test func loraTagsLeaveTheTextAndCarryTheirWeights() throws {
    let (text, loras) = try ComposablePrompt.extractingLoRAs("a <lora:foo:0.8> cat <lora:bar> x <lyco:baz:0.5:1.0> <lora:neg:-0.5> a < b")
    #expect(text == "a  cat  x   a < b")
    #expect(
        loras == [
            LoRATag(name: "foo", weight: 0.8), LoRATag(name: "bar"), LoRATag(name: "baz", weight: 1, textWeight: 0.5),
            LoRATag(name: "neg", weight: -0.5),
        ])
    #expect(try ComposablePrompt.extractingLoRAs("<lora:n:unet=0.3:te=0.7>").loras == [LoRATag(name: "n", weight: 0.3, textWeight: 0.7)])
    #expect(throws: ExtraNetworkTagError.self) { try ComposablePrompt.extractingLoRAs("<hypernet:x:1>") }
    #expect(throws: ExtraNetworkTagError.self) { try ComposablePrompt.extractingLoRAs("<lora:x:heavy>") }
}

/// Demo-model settings for the render tests: Euler (no noise after the start), 10 steps, CFG 5, 64×64.
private func editingSettings(seed: UInt64) throws -> Pipeline.Settings {
    var settings = Pipeline.Settings()
    (settings.width, settings.height, settings.steps, settings.guidance, settings.seed) = (64, 64, 10, 5, seed)
    settings.sampler = try SamplerName(parsing: "euler")
    return settings
}

/// `[red:blue:0.5]` over 10 steps is "red" for steps 0…5 (the web UI's end_at_step 5 includes step 5) and "blue" for
/// 6…9: the same as running the first 6 steps with the one prompt and handing the latents to a run of the other.
@Test func promptEditingSwitchesConditioningAtTheScheduledStep() throws {
    let pipeline = try demoPipeline.get()
    let scene = try demoCases()[0]
    let other = scene.colour == "red" ? "blue" : "red"
    let edited = scene.prompt.replacingOccurrences(of: scene.colour, with: "[\(scene.colour):\(other):0.5]")
    let settings = try editingSettings(seed: scene.seed)
    let schedule = try pipeline.encodeSchedule(edited, negative: "", steps: 10)
    #expect(schedule.conditional.map(\.endStep) == [5, 10] && schedule.unconditional.map(\.endStep) == [10])
    let scheduled = try pipeline.sample(
        conditional: schedule.conditional[0].parts[0].conditioning, unconditional: schedule.unconditional[0].parts[0].conditioning,
        settings: settings, schedule: schedule)
    let (first, negative) = try pipeline.encodePrompts(scene.prompt, negative: "")
    let (second, _) = try pipeline.encodePrompts(scene.prompt.replacingOccurrences(of: scene.colour, with: other), negative: "")
    var firstSteps = 0
    let handed = try pipeline.sample(
        conditional: first, unconditional: negative, settings: settings, handOff: .stopAt(0.6),
        progress: { _, total in
            firstSteps = total
            return true
        })
    #expect(firstSteps == 6)
    let reference = try pipeline.sample(
        conditional: second, unconditional: negative, settings: settings, handOff: .continueFrom(latents: handed, at: 0.6))
    #expect(scheduled.maxAbsDifference(reference) < 1e-5)
    let unedited = try pipeline.sample(conditional: first, unconditional: negative, settings: settings)
    #expect(scheduled.maxAbsDifference(unedited) > 1e-3)
}

/// `p:0.5 AND p:0.5` is one guided prediction per sub-prompt combined with their weights: uncond + 0.5·s·(c − u) twice,
/// which is the plain render of p.
@Test func composablePromptsCombineTheirWeightedPredictions() throws {
    let pipeline = try demoPipeline.get()
    let scene = try demoCases()[1]
    let settings = try editingSettings(seed: scene.seed)
    let schedule = try pipeline.encodeSchedule("\(scene.prompt):0.5 AND \(scene.prompt):0.5", negative: "", steps: 10)
    #expect(schedule.conditional.count == 1 && schedule.conditional[0].parts.map(\.weight) == [0.5, 0.5])
    let composed = try pipeline.sample(
        conditional: schedule.conditional[0].parts[0].conditioning, unconditional: schedule.unconditional[0].parts[0].conditioning,
        settings: settings, schedule: schedule)
    let (conditional, unconditional) = try pipeline.encodePrompts(scene.prompt, negative: "")
    let plain = try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings)
    #expect(composed.maxAbsDifference(plain) < 1e-4)
    let alternating = try pipeline.encodeSchedule("[\(scene.prompt)|\(scene.prompt)]", negative: "", steps: 10)
    #expect(alternating.conditional.count == 10)
}
