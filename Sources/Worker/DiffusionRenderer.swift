import FarmModel
import Foundation
import Imaging
import Logging
import StableDiffusion
import Tensors

/// Renders tasks with the diffusion engine, loading models by name from a folder (`ModelsIndex`: diffusers
/// folders, `.safetensors` and `.ckpt` files are models named by their file name without extension; VAEs and
/// ControlNets are listed apart) and keeping the most recently used pipelines loaded within a memory budget
/// (least recently used unloaded first; the one in use always stays). A pipeline is a model with the VAE a task
/// names (or its own) and the LoRAs (with their weights) it patches in, so the cache holds each combination it was
/// asked for: a batch of tasks reusing a LoRA patches once. Embeddings come from `addOns.embeddings` per task (small
/// files; a pipeline reads those its prompts name). The bundled models (`demo`) are always there unless the folder
/// has a model of that name.
public final class DiffusionRenderer: Renderer {
    let index: ModelsIndex
    private var controlNets: [String: ControlNet] = [:]
    /// Pixel upscalers for hires fix, by name.
    private var upscalers: [String: Upscaler] = [:]
    let budgetBytes: Int
    private var loaded: [(model: String, vae: String?, loras: [ResolvedLoRA], pipeline: Pipeline, bytes: Int)] = []
    let modelsFolder: URL?
    /// Store models fetched into the cache, by the name tasks give them; they take precedence over the models folder.
    private var modelFiles: [String: URL] = [:]
    /// Stored LoRAs and VAEs fetched into the cache, by the names tasks give them; they take precedence over the folders.
    private var loraFiles: [String: URL] = [:]
    private var vaeFiles: [String: URL] = [:]
    private var upscalerFiles: [String: URL] = [:]
    /// The models folder's TAESD for SD 1.x/2.x (false) and SDXL (true) models, once looked for (nil: none there).
    private var tinyAutoencoders: [Bool: TinyAutoencoder?] = [:]
    /// The LoRA and embedding folders tasks' names are found in.
    public let addOns: AddOnFolders
    /// Pipelines built (loaded and patched) since start, for tests and logs: a cache hit builds none.
    public private(set) var pipelinesBuilt = 0
    /// Where model loads are reported (keys a checkpoint holds but the engine does not use, at debug).
    public var logger = Logger(label: "farm.worker.models")
    /// The largest render (width × height, after the size is resolved) it takes, normally the limit the worker
    /// announces; a larger one (a task that leaves its size to a large model) fails as a host error, so that a
    /// worker with more memory takes it. Nil: no limit.
    public var maxPixels: Int?
    /// The Vulkan device the networks run on (`farm worker --device`); nil: the CPU. Set before the first task.
    public var device: VulkanDevice?

    /// The GPU the networks run on, as the worker announces it.
    public var accelerator: (description: String, memoryBytes: UInt64)? {
        device.map { ("vulkan:\($0.info.index) \($0.info.name)", $0.info.memoryBytes) }
    }

    /// Indexes the models in `folder` (none: only the bundled ones); loaded weights may take up to
    /// `memoryBudgetBytes` (default: half of the machine's memory).
    public init(modelsFolder folder: URL?, memoryBudgetBytes: Int? = nil, addOns: AddOnFolders = AddOnFolders()) throws {
        self.addOns = addOns
        modelsFolder = folder
        budgetBytes = memoryBudgetBytes ?? Int(ProcessInfo.processInfo.physicalMemory / 2)
        index = try ModelsIndex(folder: folder)
    }

    public var models: [String] { index.models.keys.sorted() }

    /// The VAEs of the models folder, by name, that a task may name instead of its model's own.
    public var vaes: [String]? {
        let taesd = [false, true].contains { TinyAutoencoder.find(forModel: nil, xl: $0, folders: modelsFolder.map { [$0] } ?? []) != nil }
        return (index.vaes.keys + (taesd ? ["taesd"] : [])).sorted()
    }

    /// The models folder's TAESD (`taesd` or `taesdxl`, a folder or `_decoder` file) for SD or SDXL models, loaded
    /// once; nil when the folder has none (or it does not load, which is logged).
    func tinyAutoencoder(xl: Bool) -> TinyAutoencoder? {
        if let known = tinyAutoencoders[xl] { return known }
        var found: TinyAutoencoder?
        if let url = TinyAutoencoder.find(forModel: nil, xl: xl, folders: modelsFolder.map { [$0] } ?? []) {
            do { found = try TinyAutoencoder.load(url) } catch { logger.warning("TAESD \(url.path) does not load: \(error)") }
        }
        tinyAutoencoders[xl] = found
        return found
    }

    /// The LoRAs of `addOns.loras` by name; nil without a LoRA folder.
    public var loras: [String]? { addOns.loras.map { _ in addOns.loraNames } }

    public var loadedModel: String? { loaded.last?.model }

    public private(set) var lastModelLoadSeconds: Double?

    /// Model `name` is the fetched file at `url` from now on; pipelines built from other bytes of that name go.
    public func useModelFile(_ url: URL, forModel name: String) {
        guard modelFiles[name] != url else { return }
        modelFiles[name] = url
        loaded.removeAll { $0.model == name }
    }

    /// LoRA `name` is the fetched file at `url` from now on (pipelines patched with it key on the file, so none goes).
    public func useLoRAFile(_ url: URL, forLoRA name: String) { loraFiles[name] = url }

    /// VAE `name` is the fetched file at `url` from now on; pipelines built with other bytes of that name go.
    public func useVAEFile(_ url: URL, forVAE name: String) {
        guard vaeFiles[name] != url else { return }
        vaeFiles[name] = url
        loaded.removeAll { $0.vae == name }
    }

    /// Upscaler `name` is the fetched file at `url` from now on; one loaded from other bytes of that name goes.
    public func useUpscalerFile(_ url: URL, forUpscaler name: String) {
        guard upscalerFiles[name] != url else { return }
        upscalerFiles[name] = url
        upscalers[name] = nil
    }

    /// Names of the models loaded now, least recently used first (a model loaded with two VAEs is listed twice).
    public var loadedModels: [String] { loaded.map(\.model) }

    /// The pipeline of model `name` with VAE `vae` (nil: the model's own) and `loras` patched in, loading it (and
    /// evicting the least recently used) if needed. `role` names the model in errors ("model", "refiner").
    func pipeline(_ name: String, vae: String?, loras: [ResolvedLoRA] = [], role: String = "model") throws -> Pipeline {
        if let position = loaded.firstIndex(where: { $0.model == name && $0.vae == vae && $0.loras == loras }) {
            let entry = loaded.remove(at: position)
            loaded.append(entry)
            return entry.pipeline
        }
        guard let url = modelFiles[name] ?? index.models[name]?.url else {
            throw RenderError(kind: .input, message: "unknown \(role) \"\(name)\"; this worker has \(models.joined(separator: ", "))")
        }
        var options = ModelWeights.Options()
        if let vae, vae != "taesd" {
            guard let vaeURL = vaeFiles[vae] ?? index.vaes[vae]?.url else {
                let known = index.vaes.keys.sorted()
                throw RenderError(
                    kind: .input, message: "unknown VAE \"\(vae)\"; this worker has \(known.isEmpty ? "none" : known.joined(separator: ", "))")
            }
            options.vae = vaeURL
        }
        let pipeline: Pipeline
        let bytes: Int
        let started = Date()
        defer { lastModelLoadSeconds = Date().timeIntervalSince(started) }
        do {
            let weights = try ModelWeights.load(url, options: options)
            if !weights.ignoredKeys.isEmpty {
                logger.debug(
                    "model \(name): \(weights.ignoredKeys.count) unused tensors not loaded",
                    metadata: ["keys": "\(weights.ignoredKeys.prefix(20).joined(separator: ", "))"])
            }
            // As held: halves two bytes an element, Float32 four; SDXL's second text encoder included.
            bytes = weights.residentBytes
            var built = try Pipeline(weights: ResolvedLoRA.patch(weights, with: loras))
            if vae == "taesd" {
                guard let tiny = tinyAutoencoder(xl: built.unet.config.isXL), tiny.downscaleFactor == built.latentScale else {
                    throw GenerationError(
                        "VAE taesd: this worker has no \(built.unet.config.isXL ? "taesdxl" : "taesd") for \(name) in its models folder")
                }
                built.tinyAutoencoder = tiny
            }
            pipeline = built.running(on: device)
        } catch let error as GenerationError {
            throw RenderError(kind: .input, message: error.message)
        } catch {
            throw RenderError(kind: .host, message: "cannot load \(role) \(name)\(vae.map { " with VAE \($0)" } ?? ""): \(error)")
        }
        pipelinesBuilt += 1
        loaded.append((name, vae, loras, pipeline, bytes))
        while loaded.count > 1 && loaded.reduce(0, { $0 + $1.bytes }) > budgetBytes { loaded.removeFirst() }
        return pipeline
    }

    /// A pixel upscaler of the models folder by file stem (`NAME.pth`, `.pt` or `.safetensors`), for hires fix and a
    /// task's `upscaler` step; loaded once. A worker without it fails the task as a host failure, so another takes it.
    func upscaler(_ name: String) throws -> Upscaler {
        if let loaded = upscalers[name] { return loaded }
        let candidates = ["pth", "pt", "safetensors"].compactMap { modelsFolder?.appendingPathComponent("\(name).\($0)") }
        guard let url = upscalerFiles[name] ?? candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw RenderError(
                kind: .host,
                message: "upscaler \"\(name)\" is not in this worker's models folder (NAME.pth, .pt or .safetensors); left to a worker that has it")
        }
        do {
            let upscaler = try Upscaler.load(url)
            upscalers[name] = upscaler
            return upscaler
        } catch {
            throw RenderError(kind: .input, message: "upscaler \(name): \(error)")
        }
    }

    /// A ControlNet of the models folder by name, loaded once.
    func controlNet(_ name: String) throws -> ControlNet {
        if let net = controlNets[name] { return net }
        guard let url = index.controlNets[name]?.url else {
            throw RenderError(
                kind: .input, message: "unknown ControlNet \"\(name)\"; this worker has \(index.controlNets.keys.sorted().joined(separator: ", "))")
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
        let loras: [ResolvedLoRA]
        do { loras = try addOns.loras(for: GenerationRequest(parameters), allowPaths: false, files: loraFiles) } catch {
            throw RenderError(kind: .input, message: error.message)
        }
        let pipeline = try self.pipeline(parameters.model, vae: parameters.vae, loras: loras)
        // The refiner decodes the image (as diffusers' refiner pipeline does), so it takes the task's VAE too.
        let refiner = try parameters.refiner.map { try self.pipeline($0, vae: parameters.vae, role: "refiner") }
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
        inputs.refiner = refiner
        inputs.loras = loras
        inputs.embeddingsFolder = addOns.embeddings
        if case .model(let name)? = request.hires?.effectiveUpscaler { inputs.hiresUpscaler = try upscaler(name) }
        do {
            let prepared = try PreparedGeneration(request, inputs: inputs, pipeline: pipeline)
            // Hires fix renders its second pass at the larger size: that is what has to fit.
            let size = prepared.outputSize
            if let maxPixels, size.width * size.height > maxPixels {
                throw RenderError(
                    kind: .host,
                    message:
                        "\(size.width)x\(size.height) is above this worker's limit of \(maxPixels) pixels (its memory); left to a larger worker"
                )
            }
            // Previews from TAESD's decode where the models folder has one that fits, else the linear projection.
            let previewer = previewEvery > 0 ? tinyAutoencoder(xl: pipeline.unet.config.isXL) : nil
            let fits = previewer.map { $0.config.latentChannels == pipeline.vae.config.latentChannels && $0.downscaleFactor == pipeline.latentScale }
            if fits == false { logger.warning("the models folder's TAESD does not fit \(parameters.model); previews use the latent projection") }
            let latents = try withoutActuallyEscaping(preview) { preview in
                try prepared.sample(
                    pipeline,
                    onStep: { step, latents in
                        guard previewEvery > 0, step % previewEvery == 0 else { return }
                        let small = (fits == true ? previewer : nil)?.preview(latents) ?? Pipeline.preview(latents)
                        if let image = try? PNGImage(width: small.width, height: small.height, format: .rgb, pixels: small.rgb) {
                            preview(step, image)
                        }
                    }, progress: progress)
            }
            return try upscaled(prepared.images(pipeline, latents: latents)[0], parameters: parameters)
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
