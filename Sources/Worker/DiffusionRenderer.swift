import FarmModel
import Foundation
import Imaging
import Logging
import StableDiffusion

/// Renders tasks with the diffusion engine, loading models by name from a folder
/// (each diffusers folder, `.safetensors` or `.ckpt` in it is a model, named by its
/// file name without extension) and keeping the most recently used ones loaded within a
/// memory budget (least recently used unloaded first; the model in use always stays).
/// The bundled models (`demo`) are always there unless the folder has a model of that name.
public final class DiffusionRenderer: Renderer {
    private let index: [String: URL]
    private let controlIndex: [String: URL]
    private var controlNets: [String: ControlNet] = [:]
    private let budgetBytes: Int
    private var loaded: [(name: String, pipeline: Pipeline, bytes: Int)] = []
    /// Where model loads are reported (keys a checkpoint holds but the engine does not use, at debug).
    public var logger = Logger(label: "farm.worker.models")

    /// Indexes the models in `folder` (none: only the bundled ones); loaded weights may take up to
    /// `memoryBudgetBytes` (default: half of the machine's memory).
    public init(modelsFolder folder: URL?, memoryBudgetBytes: Int? = nil) throws {
        budgetBytes = memoryBudgetBytes ?? Int(ProcessInfo.processInfo.physicalMemory / 2)
        let entries = try folder.map { try FileManager.default.contentsOfDirectory(at: $0, includingPropertiesForKeys: nil) } ?? []
        var index: [String: URL] = [:]
        var controls: [String: URL] = [:]
        for name in BundledModels.names {
            if let url = try? BundledModels.url(name) { index[name] = url }
        }
        for entry in entries {
            let isModelFolder = FileManager.default.fileExists(atPath: entry.appendingPathComponent("model_index.json").path)
            let isModelFile = ["safetensors", "ckpt"].contains(entry.pathExtension.lowercased())
            let config = (try? Data(contentsOf: entry.appendingPathComponent("config.json"))).map { String(decoding: $0, as: UTF8.self) }
            if isModelFolder || isModelFile {
                index[entry.deletingPathExtension().lastPathComponent] = entry
            } else if config?.contains("ControlNetModel") == true {
                controls[entry.lastPathComponent] = entry
            }
        }
        self.index = index
        controlIndex = controls
    }

    public var models: [String] { index.keys.sorted() }

    public var loadedModel: String? { loaded.last?.name }

    public private(set) var lastModelLoadSeconds: Double?

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
        let pipeline: Pipeline
        let bytes: Int
        let started = Date()
        defer { lastModelLoadSeconds = Date().timeIntervalSince(started) }
        do {
            let weights = try ModelWeights.load(url)
            if !weights.ignoredKeys.isEmpty {
                logger.debug(
                    "model \(name): \(weights.ignoredKeys.count) unused tensors not loaded",
                    metadata: ["keys": "\(weights.ignoredKeys.prefix(20).joined(separator: ", "))"])
            }
            bytes = weights.residentBytes
            pipeline = try Pipeline(weights: weights)
        } catch {
            throw RenderError(kind: .host, message: "cannot load model \(name): \(error)")
        }
        loaded.append((name, pipeline, bytes))
        while loaded.count > 1 && loaded.reduce(0, { $0 + $1.bytes }) > budgetBytes { loaded.removeFirst() }
        return pipeline
    }

    /// A ControlNet of the models folder by name, loaded once.
    func controlNet(_ name: String) throws -> ControlNet {
        if let net = controlNets[name] { return net }
        guard let url = controlIndex[name] else {
            throw RenderError(
                kind: .input, message: "unknown ControlNet \"\(name)\"; this worker has \(controlIndex.keys.sorted().joined(separator: ", "))")
        }
        do {
            let net = try ControlNet.load(url)
            controlNets[name] = net
            return net
        } catch {
            throw RenderError(kind: .host, message: "cannot load ControlNet \(name): \(error)")
        }
    }

    public func render(
        _ parameters: TaskParameters, inputs: [String: Data], previewEvery: Int,
        preview: (Int, PNGImage) -> Void, progress: (Int, Int) -> Bool
    ) throws -> PNGImage {
        let pipeline = try self.pipeline(parameters.model)
        func image(_ hash: String?) throws -> PNGImage? {
            guard let hash else { return nil }
            guard let data = inputs[hash] else { throw RenderError(kind: .host, message: "input image \(hash.prefix(12))… is missing") }
            do { return try PNGImage(pngData: data) } catch { throw RenderError(kind: .input, message: "input image \(hash.prefix(12))…: \(error)") }
        }
        // A mask of another size than its image is refused from the headers, before either is decoded.
        if let maskHash = parameters.mask, let imageHash = parameters.initImage,
            let maskData = inputs[maskHash], let imageData = inputs[imageHash],
            let maskSize = PNGImage.declaredSize(of: maskData), let imageSize = PNGImage.declaredSize(of: imageData),
            maskSize != imageSize
        {
            throw RenderError(
                kind: .input, message: "the mask is \(maskSize.width)x\(maskSize.height) but the image is \(imageSize.width)x\(imageSize.height)")
        }
        let request = GenerationRequest(parameters)
        var inputs = GenerationInputs(initImage: try image(request.initImage), mask: try image(request.mask))
        inputs.controls = try request.controlnets.map { control in
            (net: try controlNet(control.model), image: try image(control.image)!, scale: control.scale)
        }
        do {
            let prepared = try PreparedGeneration(request, inputs: inputs, pipeline: pipeline)
            let latents = try withoutActuallyEscaping(preview) { preview in
                try prepared.sample(
                    pipeline,
                    onStep: { step, latents in
                        guard previewEvery > 0, step % previewEvery == 0 else { return }
                        let small = Pipeline.preview(latents)
                        if let image = try? PNGImage(width: small.width, height: small.height, format: .rgb, pixels: small.rgb) {
                            preview(step, image)
                        }
                    }, progress: progress)
            }
            return try prepared.images(pipeline, latents: latents)[0]
        } catch let error as InvalidGenerationRequest {
            throw RenderError(kind: .input, message: error.message)
        } catch let error as SamplingError {
            throw RenderError(kind: .input, message: error.message)
        } catch let error as GenerationError {
            throw RenderError(kind: .input, message: error.message)
        } catch let error as PromptSyntaxError {
            throw RenderError(kind: .input, message: "prompt: \(error)")
        } catch is CancellationError {
            throw RenderError(kind: .host, message: "cancelled")
        }
    }
}
