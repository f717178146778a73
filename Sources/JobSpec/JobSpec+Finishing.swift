import FarmModel
import Generation

/// The finishing fields of a task as specs write them: few-step shortcuts, variation seeds, the init image's resize
/// mode, hires fix.
extension JobSpec {
    /// Task fields for few-step shortcuts, variation seeds, resize modes and hires fix (also `POST /v1/jobs` query
    /// fields).
    public static let finishingFields: Set<String> = [
        "token_merging_ratio", "deepcache_interval", "deepcache_branch",
        "subseed", "subseed_strength", "seed_resize_from", "resize_mode", "hires_scale", "hires_width", "hires_height", "hires_upscaler",
        "hires_steps", "hires_denoise", "hires_prompt", "hires_negative_prompt", "hires_negative", "hires_sampler",
    ]
    /// The finishing fields a sweep may vary (subseeds also as a range like "1-100").
    static let finishingSweepFields = ["subseed", "subseed_strength", "hires_scale", "hires_denoise", "hires_upscaler", "resize_mode"]

    /// Reads the finishing fields of `fields` into `task`; errors name the field as the spec wrote it.
    static func finishing(_ fields: [String: String], into task: inout TaskParameters, fail: (String, String) -> JobSpecError) throws {
        func number<T: LosslessStringConvertible>(_ name: String, _ what: String) throws -> T? {
            guard let text = fields[name] else { return nil }
            guard let value = T(text.trimmingCharacters(in: .whitespaces)) else { throw fail(name, "must be \(what), got \"\(text.prefix(40))\"") }
            return value
        }
        task.tokenMergingRatio = try number("token_merging_ratio", "a number in [0, 0.75]")
        task.deepCacheInterval = try number("deepcache_interval", "a whole number of steps")
        task.deepCacheBranch = try number("deepcache_branch", "a whole number 0...11")
        task.subseed = try number("subseed", "a whole number 0...\(Int64.max)")
        task.subseedStrength = try number("subseed_strength", "a number in [0, 1]")
        if let text = fields["seed_resize_from"] {
            guard let size = PixelSize(parsing: text) else {
                throw fail("seed_resize_from", "must be W,H (two pixel counts), got \"\(text.prefix(40))\"")
            }
            task.seedResizeFrom = [size.width, size.height]
        }
        if let text = fields["resize_mode"] {
            do { task.resizeMode = try ResizeMode(parsing: text).rawValue } catch let error as InvalidGenerationRequest {
                throw fail("resize_mode", error.message)
            }
        }
        task.hiresScale = try number("hires_scale", "a number")
        task.hiresWidth = try number("hires_width", "an integer")
        task.hiresHeight = try number("hires_height", "an integer")
        task.hiresSteps = try number("hires_steps", "an integer")
        task.hiresDenoise = try number("hires_denoise", "a number in (0, 1]")
        task.hiresUpscaler = fields["hires_upscaler"]
        task.hiresPrompt = fields["hires_prompt"]
        task.hiresNegativePrompt = fields["hires_negative_prompt"] ?? fields["hires_negative"]
        task.hiresSampler = fields["hires_sampler"]
    }
}
