import Tensors

/// One text conditioning of a composable prompt with its weight (`a AND b:0.5`).
public struct WeightedConditioning {
    /// The encoded sub-prompt.
    public var conditioning: TextConditioning
    /// Its weight in the combined prediction.
    public var weight: Float

    /// Makes a weighted conditioning.
    public init(_ conditioning: TextConditioning, weight: Float = 1) {
        self.conditioning = conditioning
        self.weight = weight
    }
}

/// Conditioning that changes over the steps (the web UI's prompt editing) and may combine several sub-prompts (`AND`):
/// stretches of steps, each encoded once.
public struct ConditioningSchedule {
    /// A stretch: sampler steps up to `endStep` (from 0, the web UI's `end_at_step`) use `parts`.
    public struct Segment {
        /// The last step of the stretch.
        public var endStep: Int
        /// The sub-prompts' conditionings (one unless the prompt uses `AND`).
        public var parts: [WeightedConditioning]

        /// Makes a stretch.
        public init(endStep: Int, parts: [WeightedConditioning]) {
            self.endStep = endStep
            self.parts = parts
        }
    }

    /// The prompt's stretches, in step order.
    public var conditional: [Segment]
    /// The negative prompt's stretches (one part each).
    public var unconditional: [Segment]

    /// Makes a schedule.
    public init(conditional: [Segment], unconditional: [Segment]) {
        self.conditional = conditional
        self.unconditional = unconditional
    }

    /// The stretch sampler step `step` uses: the first whose end is at or after it (the last one past the end).
    static func index(_ segments: [Segment], at step: Int) -> Int {
        segments.firstIndex { step <= $0.endStep } ?? segments.count - 1
    }
}

/// Prompt editing and composable diffusion over the sampling loop.
extension Pipeline {
    /// The schedule of `prompt` (prompt editing, `AND` with weights) and `negative` (prompt editing) for `steps`
    /// steps: every distinct text encoded once, all padded to one token length.
    public func encodeSchedule(
        _ prompt: String, negative: String, steps: Int, clipSkip: Int = 1, tokenizer: CLIPTokenizer? = nil
    ) throws -> ConditioningSchedule {
        let tokenizer = try tokenizer ?? CLIPTokenizer.shared()
        let parts = ComposablePrompt.parts(prompt).map { ($0, PromptSchedule.schedule($0.text, steps: steps)) }
        let negativeSchedule = PromptSchedule.schedule(negative, steps: steps)
        var cache: [String: TextConditioning] = [:]
        for text in Set(parts.flatMap { $0.1.map(\.text) } + negativeSchedule.map(\.text)) {
            cache[text] = try encode(text, clipSkip: clipSkip, tokenizer: tokenizer)
        }
        let length = cache.values.map { $0.context.shape[1] }.max() ?? 77
        if cache.values.contains(where: { $0.context.shape[1] != length }) {
            let empty = try encode("", clipSkip: clipSkip, tokenizer: tokenizer).context
            for (text, value) in cache {
                var padded = value
                while padded.context.shape[1] < length { padded.context = Tensor.concat([padded.context, empty], axis: 1) }
                cache[text] = padded
            }
        }
        let ends = Set(parts.flatMap { $0.1.map(\.endStep) }).sorted()
        let conditional = ends.map { end in
            ConditioningSchedule.Segment(
                endStep: end,
                parts: parts.map { part, schedule in
                    WeightedConditioning(cache[schedule.first { end <= $0.endStep }!.text]!, weight: part.weight)
                })
        }
        let unconditional = negativeSchedule.map { stretch in
            let encoded = cache[stretch.text]!
            let zero = unet.config.isXL && stretch.text.isEmpty && forceZerosForEmptyPrompt
            return ConditioningSchedule.Segment(endStep: stretch.endStep, parts: [WeightedConditioning(zero ? encoded.zeros : encoded)])
        }
        return ConditioningSchedule(conditional: conditional, unconditional: unconditional)
    }

    /// The UNet context and added conditioning of one stretch pair: unconditional rows, then each part's rows.
    func scheduledInputs(_ conditional: ConditioningSchedule.Segment, _ unconditional: ConditioningSchedule.Segment, settings: Settings)
        throws -> (context: Tensor, added: AddedConditioning?)
    {
        let negative = unconditional.parts[0].conditioning
        let parts = conditional.parts.map(\.conditioning)
        guard parts.count > 1 || conditional.parts[0].weight != 1 else {
            return (
                textContext(conditional: parts[0].context, unconditional: negative.context, settings: settings),
                try addedConditioning(conditional: parts[0], unconditional: negative, settings: settings)
            )
        }
        var rows = Array(repeating: negative.context, count: settings.batch)
        for part in parts { rows += Array(repeating: part.context, count: settings.batch) }
        guard var added = try addedConditioning(conditional: parts[0], unconditional: negative, settings: forcedGuidance(settings)) else {
            return (Tensor.concat(rows, axis: 0), nil)
        }
        var single = settings
        single.guidance = 1
        for part in parts.dropFirst() {
            let more = try addedConditioning(conditional: part, unconditional: negative, settings: single)!
            added = AddedConditioning(pooled: Tensor.concat([added.pooled, more.pooled], axis: 0), timeIDs: added.timeIDs + more.timeIDs)
        }
        return (Tensor.concat(rows, axis: 0), added)
    }

    /// `settings` with guidance on, so that the unconditional rows are always computed for weighted sub-prompts.
    private func forcedGuidance(_ settings: Settings) -> Settings {
        var forced = settings
        forced.guidance = max(settings.guidance, 1.5)
        return forced
    }

    /// Composable diffusion's prediction: one UNet call over [uncond, part 1, …, part n] rows, combined as
    /// uncond + Σ weightᵢ · guidance · (partᵢ − uncond), the web UI's `combine_denoised`.
    func composedPrediction(
        _ input: Tensor, timestep: Float, context: Tensor, added: AddedConditioning?, weights: [Float], settings: Settings,
        shortcuts: UNetShortcuts = UNetShortcuts()
    ) -> Tensor {
        let batchInput = Tensor.concat(Array(repeating: input, count: weights.count + 1), axis: 0)
        let prediction = unet.predict(batchInput, timestep: timestep, context: context, added: added, control: nil, shortcuts: shortcuts)
        let pieces = prediction.chunked(weights.count + 1, axis: 0)
        var combined = pieces[0]
        for (piece, weight) in zip(pieces.dropFirst(), weights) {
            combined.add(piece - pieces[0], scaledBy: weight * settings.guidance)
        }
        return combined
    }
}
