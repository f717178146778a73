import FarmModel
import Foundation
import Imaging
import StableDiffusion

/// Renders tasks with the diffusion engine, loading models by name from a folder
/// (each diffusers folder, `.safetensors` or `.ckpt` in it is a model, named by its
/// file name without extension) and keeping the most recently used ones loaded.
public final class DiffusionRenderer: Renderer {
    private let folder: URL
    private let index: [String: URL]
    private let capacity: Int
    private var loaded: [(name: String, pipeline: Pipeline)] = []

    /// Indexes the models in `folder`; `capacity` models stay loaded at once.
    public init(modelsFolder folder: URL, capacity: Int = 1) throws {
        self.folder = folder
        self.capacity = max(1, capacity)
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
        let pipeline: Pipeline
        do {
            pipeline = try Pipeline(weights: try ModelWeights.load(url))
        } catch {
            throw RenderError(kind: .host, message: "cannot load model \(name): \(error)")
        }
        if loaded.count >= capacity { loaded.removeFirst() }
        loaded.append((name, pipeline))
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
