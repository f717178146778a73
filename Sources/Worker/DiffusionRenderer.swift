import FarmModel
import Foundation
import Imaging
import StableDiffusion

/// Renders tasks with the diffusion engine, loading models by name from a folder
/// (each diffusers folder, `.safetensors` or `.ckpt` in it is a model, named by its
/// file name without extension) and keeping the most recently used ones loaded within a
/// memory budget (least recently used unloaded first; the model in use always stays).
public final class DiffusionRenderer: Renderer {
    private let folder: URL
    private let index: [String: URL]
    private let budgetBytes: Int
    private var loaded: [(name: String, pipeline: Pipeline, bytes: Int)] = []

    /// Indexes the models in `folder`; loaded weights may take up to `memoryBudgetBytes`
    /// (default: half of the machine's memory).
    public init(modelsFolder folder: URL, memoryBudgetBytes: Int? = nil) throws {
        self.folder = folder
        budgetBytes = memoryBudgetBytes ?? Int(ProcessInfo.processInfo.physicalMemory / 2)
        let entries = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        var index: [String: URL] = [:]
        for entry in entries {
            let isModelFolder = FileManager.default.fileExists(atPath: entry.appendingPathComponent("model_index.json").path)
            let isModelFile = ["safetensors", "ckpt"].contains(entry.pathExtension.lowercased())
            if isModelFolder || isModelFile { index[entry.deletingPathExtension().lastPathComponent] = entry }
        }
        self.index = index
    }

    public var models: [String] { index.keys.sorted() }

    public var loadedModel: String? { loaded.last?.name }

    /// Names of the models loaded now, least recently used first.
    public var loadedModels: [String] { loaded.map(\.name) }

    /// The pipeline for `name`, loading it (and evicting the least recently used) if needed.
    func pipeline(_ name: String) throws -> Pipeline {
        if let position = loaded.firstIndex(where: { $0.name == name }) {
            let entry = loaded.remove(at: position)
            loaded.append(entry)
            return entry.pipeline
        }
        guard let url = index[name] else {
            throw RenderError(kind: .input, message: "unknown model \"\(name)\"; this worker has \(models.joined(separator: ", "))")
        }
        let pipeline: Pipeline, bytes: Int
        do {
            let weights = try ModelWeights.load(url)
            bytes = 4 * [weights.unet, weights.vae, weights.textEncoder].reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
            pipeline = try Pipeline(weights: weights)
        } catch {
            throw RenderError(kind: .host, message: "cannot load model \(name): \(error)")
        }
        loaded.append((name, pipeline, bytes))
        while loaded.count > 1 && loaded.reduce(0, { $0 + $1.bytes }) > budgetBytes { loaded.removeFirst() }
        return pipeline
    }

    public func render(_ parameters: TaskParameters, progress: (Int, Int) -> Bool) throws -> PNGImage {
        let pipeline = try self.pipeline(parameters.model)
        var settings = Pipeline.Settings()
        settings.width = parameters.width
        settings.height = parameters.height
        settings.steps = parameters.steps
        settings.guidance = Float(parameters.cfgScale)
        settings.seed = parameters.seed
        do {
            settings.sampler = try SamplerName(parsing: parameters.sampler)
            try pipeline.validate(settings)
            let (conditional, unconditional) = try pipeline.encodePrompts(parameters.prompt, negative: parameters.negativePrompt)
            let latents = try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings,
                                              progress: progress)
            let pixels = pipeline.decode(latents)[0]
            let text = "\(parameters.prompt)\n" + (parameters.negativePrompt.isEmpty ? "" : "Negative prompt: \(parameters.negativePrompt)\n")
                + "Steps: \(parameters.steps), Sampler: \(parameters.sampler), CFG scale: \(parameters.cfgScale), Seed: \(parameters.seed), Size: \(parameters.width)x\(parameters.height), Model: \(parameters.model)"
            return try PNGImage(width: parameters.width, height: parameters.height, format: .rgb, pixels: pixels,
                                text: [("parameters", text)])
        } catch let error as SamplingError {
            throw RenderError(kind: .input, message: error.message)
        } catch let error as PromptSyntaxError {
            throw RenderError(kind: .input, message: "prompt: \(error)")
        } catch is CancellationError {
            throw RenderError(kind: .host, message: "cancelled")
        }
    }
}
