/// What one task renders: everything a worker needs to make one image.
public struct TaskParameters: Codable, Equatable, Sendable {
    /// The text to draw.
    public var prompt: String
    /// What to steer away from.
    public var negativePrompt: String
    /// The model's name as the worker knows it.
    public var model: String
    /// Output width in pixels (a multiple of 8).
    public var width: Int
    /// Output height in pixels (a multiple of 8).
    public var height: Int
    /// Denoising steps.
    public var steps: Int
    /// Classifier-free guidance scale.
    public var cfgScale: Double
    /// The sampler's name (`euler_a`, `dpmpp_2m`, …).
    public var sampler: String
    /// The seed of the initial noise.
    public var seed: UInt64

    /// Builds parameters; defaults are SD 1.5's usual ones.
    public init(prompt: String, negativePrompt: String = "", model: String = "demo", width: Int = 512,
                height: Int = 512, steps: Int = 20, cfgScale: Double = 7.5, sampler: String = "euler_a",
                seed: UInt64 = 0) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.model = model
        self.width = width
        self.height = height
        self.steps = steps
        self.cfgScale = cfgScale
        self.sampler = sampler
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey {
        case prompt, negativePrompt = "negative_prompt", model, width, height, steps
        case cfgScale = "cfg_scale", sampler, seed
    }

    /// Checks every field against the farm's limits; the error names the field.
    public func validate(limits: Limits = Limits()) throws {
        func fail(_ field: String, _ why: String) -> ValidationFailure {
            ValidationFailure(field: field, message: why)
        }
        if prompt.isEmpty { throw fail("prompt", "must not be empty") }
        if prompt.utf8.count > limits.maxPromptBytes {
            throw fail("prompt", "is \(prompt.utf8.count) bytes; the limit is \(limits.maxPromptBytes)")
        }
        if negativePrompt.utf8.count > limits.maxPromptBytes {
            throw fail("negative_prompt", "is \(negativePrompt.utf8.count) bytes; the limit is \(limits.maxPromptBytes)")
        }
        if model.isEmpty { throw fail("model", "must name a model") }
        for (field, value) in [("width", width), ("height", height)] {
            if value < 8 || value > limits.maxSide || value % 8 != 0 {
                throw fail(field, "must be a multiple of 8 between 8 and \(limits.maxSide), got \(value)")
            }
        }
        if width * height > limits.maxPixels {
            throw fail("width", "\(width)x\(height) exceeds \(limits.maxPixels) pixels")
        }
        if steps < 1 || steps > limits.maxSteps {
            throw fail("steps", "must be 1...\(limits.maxSteps), got \(steps)")
        }
        if !cfgScale.isFinite || cfgScale < 0 || cfgScale > 100 {
            throw fail("cfg_scale", "must be between 0 and 100, got \(cfgScale)")
        }
        if sampler.isEmpty { throw fail("sampler", "must name a sampler") }
    }
}

/// The farm's input limits, so that no client can ask for unbounded work or memory.
public struct Limits: Codable, Sendable {
    /// Longest prompt, in UTF-8 bytes.
    public var maxPromptBytes = 4096
    /// Largest image side, in pixels.
    public var maxSide = 2048
    /// Largest image area, in pixels.
    public var maxPixels = 2048 * 2048
    /// Most denoising steps.
    public var maxSteps = 500
    /// Most tasks in one job.
    public var maxTasksPerJob = 1_000_000
    /// Largest wire message, in bytes.
    public var maxMessageBytes = 64 * 1024 * 1024

    /// The default limits.
    public init() {}
}

/// A bad input, naming the field it is about.
public struct ValidationFailure: Error, Equatable, CustomStringConvertible {
    /// The offending field's name as the user wrote it.
    public var field: String
    /// What is wrong with it and what is allowed.
    public var message: String

    /// Makes a failure for `field`.
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}
