import FarmModel
import Foundation
import Imaging

/// Turns a task's parameters into an image, reporting each step; the worker's
/// only view of the engine.
public protocol Renderer {
    /// Models this renderer can draw with.
    var models: [String] { get }
    /// VAEs it can swap in for a model's own, by name; nil when it cannot render tasks that name a VAE or a
    /// refiner at all (the farm then gives it none).
    var vaes: [String]? { get }
    /// LoRAs it has, by name; nil when it has no LoRA folder (the farm then gives it no task naming LoRAs in `loras`).
    var loras: [String]? { get }
    /// The model loaded now (nil when none), reported for model affinity.
    var loadedModel: String? { get }
    /// Seconds the latest model load took (nil when it never loaded one), for metrics.
    var lastModelLoadSeconds: Double? { get }
    /// The GPU it renders on, as the worker announces it (`vulkan:0 NAME`) with its memory; nil: the CPU.
    var accelerator: (description: String, memoryBytes: UInt64)? { get }
    /// Renders one image; `inputs` holds the task's input images (PNG bytes) by SHA-256;
    /// `progress(step, total)` is called after each step and returns false to cancel;
    /// `preview(step, image)` gets a low-resolution preview every `previewEvery` steps (0: never).
    func render(
        _ parameters: TaskParameters, inputs: [String: Data], previewEvery: Int,
        preview: (Int, PNGImage) -> Void, progress: (Int, Int) -> Bool
    ) throws -> PNGImage
    /// From now on, model `name` is the file at `url` (a store model fetched into the cache), whatever the models
    /// folder holds under that name.
    func useModelFile(_ url: URL, forModel name: String)
    /// From now on, the LoRA tasks call `name` is the file at `url` (a stored LoRA fetched into the cache).
    func useLoRAFile(_ url: URL, forLoRA name: String)
    /// From now on, the VAE tasks call `name` is the file at `url` (a stored VAE fetched into the cache).
    func useVAEFile(_ url: URL, forVAE name: String)
    /// From now on, the upscaler tasks call `name` is the file at `url` (a stored upscaler fetched into the cache).
    func useUpscalerFile(_ url: URL, forUpscaler name: String)
}

extension Renderer {
    public var accelerator: (description: String, memoryBytes: UInt64)? { nil }
    public var vaes: [String]? { nil }
    public var loras: [String]? { nil }
    public var loadedModel: String? { models.count == 1 ? models[0] : nil }
    public var lastModelLoadSeconds: Double? { nil }
    /// Renderers that load no files ignore it.
    public func useModelFile(_ url: URL, forModel name: String) {}
    /// Renderers that load no files ignore it.
    public func useLoRAFile(_ url: URL, forLoRA name: String) {}
    /// Renderers that load no files ignore it.
    public func useVAEFile(_ url: URL, forVAE name: String) {}
    /// Renderers that load no files ignore it.
    public func useUpscalerFile(_ url: URL, forUpscaler name: String) {}
}

/// Errors a renderer reports; the kind decides whether the farm retries elsewhere.
public struct RenderError: Error, CustomStringConvertible {
    /// Input errors fail the task; host errors send it to another worker.
    public var kind: FailureKind
    /// What went wrong.
    public var message: String

    /// Makes a render error.
    public init(kind: FailureKind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Draws a deterministic card (a gradient between two colours derived from the seed and
/// prompt) instead of running the engine: the quick start's `test-pattern` model, and the
/// synthetic engine of scale and fault tests (`farm worker --engine synthetic`), which also
/// waits `delay` seconds per task, spread over its steps.
public struct TestPatternRenderer: Renderer {
    /// The model names it answers to (as models and as refiners).
    public let models: [String]
    /// The VAE names it answers to: it draws the same card whatever the refiner or VAE.
    public let vaes: [String]?
    /// Seconds each task takes.
    public let delay: Double
    /// The side of the square it draws when a task names no size (the size a diffusion model would choose).
    public static let nativeSize = 512

    /// Makes the renderer.
    public init(models: [String] = ["test-pattern"], vaes: [String] = [], delay: Double = 0) {
        self.models = models
        self.vaes = vaes
        self.delay = delay
    }

    public func render(
        _ parameters: TaskParameters, inputs: [String: Data], previewEvery: Int,
        preview: (Int, PNGImage) -> Void, progress: (Int, Int) -> Bool
    ) throws -> PNGImage {
        for (role, name) in [("model", parameters.model), ("refiner", parameters.refiner)] {
            guard let name, !models.contains(name) else { continue }
            throw RenderError(kind: .input, message: "unknown \(role) \"\(name)\"; this worker has \(models.joined(separator: ", "))")
        }
        if let vae = parameters.vae, vaes?.contains(vae) != true { throw RenderError(kind: .input, message: "unknown VAE \"\(vae)\"") }
        // SplitMix64: a tiny, well-mixed generator so that the same seed gives the same card.
        var state = parameters.seed &+ UInt64(truncatingIfNeeded: parameters.prompt.utf8.reduce(5381) { ($0 << 5) &+ $0 &+ Int($1) })
        func next() -> UInt8 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return UInt8(truncatingIfNeeded: z ^ (z >> 31))
        }
        let top = (next(), next(), next())
        let bottom = (next(), next(), next())
        let width = parameters.width ?? TestPatternRenderer.nativeSize
        let height = parameters.height ?? TestPatternRenderer.nativeSize
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for step in 1...parameters.steps {
            let rowsDone = height * step / parameters.steps
            for y in height * (step - 1) / parameters.steps..<rowsDone {
                let t = Double(y) / Double(max(height - 1, 1))
                for x in 0..<width {
                    let base = (y * width + x) * 3
                    pixels[base] = UInt8(Double(top.0) * (1 - t) + Double(bottom.0) * t)
                    pixels[base + 1] = UInt8(Double(top.1) * (1 - t) + Double(bottom.1) * t)
                    pixels[base + 2] = UInt8(Double(top.2) * (1 - t) + Double(bottom.2) * t)
                }
            }
            if delay > 0 { Thread.sleep(forTimeInterval: delay / Double(parameters.steps)) }
            guard progress(step, parameters.steps) else {
                throw RenderError(kind: .host, message: "cancelled at step \(step)")
            }
        }
        return try PNGImage(
            width: width, height: height, format: .rgb, pixels: pixels,
            text: [
                ("parameters", parameters.parametersText(width: width, height: height)), ("seed", String(parameters.seed)),
                ("model", parameters.model),
            ])
    }
}
