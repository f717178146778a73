import ArgumentParser
import Foundation
import Generation
import Imaging
import StableDiffusion
import Tensors
import Worker

/// `farm render`: draws images locally with the diffusion engine, no farm needed.
struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render images on this machine with a Stable Diffusion model.",
        discussion: """
            Loads a diffusers folder, a single-file .safetensors or a .ckpt, and writes PNG files that carry the \
            generation parameters in a `parameters` text chunk (the AUTOMATIC1111 format). With --batch N the \
            images use seeds seed, seed+1, … and are written as FILE-1.png, FILE-2.png, ….
            """)

    @OptionGroup var generation: GenerationOptions

    @Option(help: "Noise generator: cpu (PyTorch's CPU generator, as diffusers on CPU) or philox (the web UI's NV generator).")
    var rng = "cpu"

    @Option(help: "Images rendered together (seeds seed, seed+1, …).")
    var batch = 1

    @Option(help: "Batches rendered one after another; batch k starts at seed + k·batch.")
    var batchCount = 1

    @Option(help: "Force the prediction type: epsilon or v_prediction (SD 2.x 768-v models).")
    var prediction: String?

    @Flag(
        help:
            "Decode in tiles (memory bounded by the tile size; for large images). Tiles share the whole image's group-norm statistics, learnt in extra passes (several times the decode time)."
    )
    var vaeTiling = false

    @Flag(
        help:
            "Decode in tiles, each with its own group-norm statistics, as diffusers' tiling does (one decode's time; tiles differ slightly in tone).")
    var vaeTilingFast = false

    @Option(help: "Where <lora:NAME:W> tags (and --lora names) are found: LoRA files by stem, subfolders included.")
    var loraDir: String?

    @Option(help: "Where textual-inversion embeddings are found: a prompt or negative prompt naming a file's stem uses its vectors.")
    var embeddingsDir: String?

    @Option(help: "The PNG file to write.")
    var out = "render.png"

    @Option(help: "Where the networks run: cpu, or vulkan[:N] (a Vulkan GPU; farm devices lists them).")
    var device = "cpu"

    @Option(help: "Also write the final latents (before the VAE) as a NumPy .npy file.")
    var saveLatents: String?

    func validate() throws {
        guard batch >= 1 && batch <= 64 else { throw ValidationError("--batch must be 1...64, got \(batch)") }
        guard batchCount >= 1 && batchCount <= 10_000 else { throw ValidationError("--batch-count must be 1...10000, got \(batchCount)") }
        guard NoiseSource(rawValue: rng) != nil else { throw ValidationError("--rng must be cpu or philox, got \(rng)") }
        if let prediction, !["epsilon", "v_prediction"].contains(prediction) {
            throw ValidationError("--prediction must be epsilon or v_prediction, got \(prediction)")
        }
        guard out.lowercased().hasSuffix(".png") else { throw ValidationError("--out must name a .png file") }
        if let vae = generation.vae, vae != "taesd", !FileManager.default.fileExists(atPath: vae) {
            throw ValidationError("--vae \(vae): no such file or folder (a diffusers vae folder, a .safetensors file, or taesd)")
        }
        for (flag, folder) in [("--lora-dir", loraDir), ("--embeddings-dir", embeddingsDir)] {
            var isFolder: ObjCBool = false
            if let folder, !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) || !isFolder.boolValue {
                throw ValidationError("\(flag) \(folder): no such folder")
            }
        }
        let request = try self.request()
        do { _ = try request.samplerName } catch let error as InvalidGenerationRequest { throw ValidationError("--sampler: \(error)") }
    }

    /// The request the flags ask for (this machine renders it: its noise generator is `--rng`'s).
    func request() throws -> GenerationRequest {
        var request = try generation.request()
        request.rng = NoiseSource(rawValue: rng) ?? .cpu
        try GenerationOptions.check(request)
        return request
    }

    /// The TAESD `--vae` names: `taesd` finds `taesd` (SD 1.x/2.x) or `taesdxl` (SDXL) beside the model or in the
    /// current folder; anything else is a TAESD folder or file. Its scale must be the pipeline's VAE's.
    static func tinyAutoencoder(_ name: String, model: URL, pipeline: Pipeline) throws -> TinyAutoencoder {
        let xl = pipeline.unet.config.isXL
        let here = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        guard let url = name == "taesd" ? TinyAutoencoder.find(forModel: model, xl: xl, folders: [here]) : URL(fileURLWithPath: name) else {
            let stem = TinyAutoencoder.stems(xl: xl)[0]
            throw ValidationError(
                "--vae taesd: no \(stem) folder or \(stem)_decoder.safetensors beside the model or in the current folder; download madebyollin/\(stem) there or pass its path"
            )
        }
        let decoder = try TinyAutoencoder.load(url)
        guard decoder.canDecode, decoder.downscaleFactor == pipeline.latentScale, decoder.config.latentChannels == pipeline.vae.config.latentChannels
        else {
            throw ValidationError(
                "--vae \(url.path): this TAESD decodes \(decoder.config.latentChannels) latent channels at \(decoder.downscaleFactor)x, the model needs \(pipeline.vae.config.latentChannels) at \(pipeline.latentScale)x"
            )
        }
        return decoder
    }

    /// Reads a PNG, naming the flag in the error.
    static func readPNG(_ path: String, flag: String) throws -> PNGImage {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("\(flag) \(path): cannot read the file")
        }
        do { return try PNGImage(pngData: data) } catch { throw ValidationError("\(flag) \(path): \(error)") }
    }

    func run() throws {
        do {
            try render()
        } catch let error as ValidationError {
            throw error
        } catch {
            // Bad models, sizes or prompts are the user's input: one line, exit status 2.
            throw ValidationError(String(describing: error))
        }
    }

    private func render() throws {
        let started = Date()
        let request = try self.request()
        // The VAE replaces the model's and the refiner's (which decodes a refined image); --prediction is the model's.
        // TAESD (`taesd`, or a TAESD folder or file) decodes in place of the VAE; the model keeps its own for encoding.
        let tiny = request.vae.map { $0 == "taesd" || TinyAutoencoder.isTinyAutoencoder(URL(fileURLWithPath: $0)) } ?? false
        let vae = tiny ? nil : request.vae.map { URL(fileURLWithPath: $0) }
        let folders = AddOnFolders(loras: loraDir.map { URL(fileURLWithPath: $0) }, embeddings: embeddingsDir.map { URL(fileURLWithPath: $0) })
        let loras: [ResolvedLoRA]
        do { loras = try folders.loras(for: request, allowPaths: true) } catch { throw ValidationError(error.message) }
        let modelURL = try BundledModels.resolve(request.model)
        let weights = try ModelWeights.load(modelURL, options: .init(predictionType: prediction, vae: vae))
        var pipeline = try Pipeline(weights: ResolvedLoRA.patch(weights, with: loras))
        let refinerOptions = ModelWeights.Options(vae: vae)
        var refiner = try request.refiner.map { try Pipeline(weights: ModelWeights.load(try BundledModels.resolve($0), options: refinerOptions)) }
        let computeDevice = try openComputeDevice(device)
        pipeline = pipeline.running(on: computeDevice)
        refiner = refiner?.running(on: computeDevice)
        if tiny, let name = request.vae {
            let decoder = try Render.tinyAutoencoder(name, model: modelURL, pipeline: refiner ?? pipeline)
            pipeline.tinyAutoencoder = decoder
            refiner?.tinyAutoencoder = decoder
        }
        var inputs = GenerationInputs(
            initImage: try request.initImage.map { try Render.readPNG($0, flag: "--init-image") },
            mask: try request.mask.map { try Render.readPNG($0, flag: "--mask") },
            controls: try request.controlnets.map { control in
                (
                    net: try ControlNet.load(URL(fileURLWithPath: control.model)),
                    image: try Render.readPNG(control.image, flag: "--control-image"), scale: control.scale
                )
            })
        inputs.refiner = refiner
        inputs.loras = loras
        inputs.embeddingsFolder = folders.embeddings
        // A hires upscaler that is not a latent mode is an upscaler file (ESRGAN-class, `.pth` or `.safetensors`).
        if case .model(let path)? = request.hires?.effectiveUpscaler {
            do { inputs.hiresUpscaler = try Upscaler.load(URL(fileURLWithPath: path)) } catch {
                throw ValidationError(
                    "--hires-upscaler \(path): neither a latent mode (\(LatentUpscaleMode.allCases.map(\.rawValue).joined(separator: ", "))) nor an upscaler file: \(error)"
                )
            }
        }
        let prepared: PreparedGeneration
        do { prepared = try PreparedGeneration(request, inputs: inputs, pipeline: pipeline) } catch let error as GenerationError {
            throw ValidationError(error.message)
        }
        try pipeline.validate(try request.settings(width: prepared.width, height: prepared.height, batch: batch))
        let total = batch * batchCount
        for round in 0..<batchCount {
            let seed = request.seed &+ UInt64(round * batch)
            let bar = ProgressBar(label: batchCount == 1 ? "sampling" : "batch \(round + 1)/\(batchCount)")
            let latents = try prepared.sample(
                pipeline, seed: seed, batch: batch,
                progress: { step, total in
                    bar.update(step, total)
                    return true
                })
            bar.finish()
            if let saveLatents {
                let path =
                    batchCount == 1 ? saveLatents : saveLatents.replacingOccurrences(of: ".npy", with: "-\(round + 1).npy", options: [.backwards])
                try NumPyFile.write(latents, to: URL(fileURLWithPath: path))
            }
            let tiling: TileStatistics? = vaeTilingFast ? .perTile : vaeTiling ? .shared : nil
            let images = try prepared.images(pipeline, latents: latents, seed: seed, tiledVAE: tiling)
            for (index, image) in images.enumerated() {
                let number = round * batch + index
                let path =
                    total == 1 ? out : out.replacingOccurrences(of: ".png", with: "-\(number + 1).png", options: [.backwards, .caseInsensitive])
                try image.pngData().write(to: URL(fileURLWithPath: path), options: .atomic)
                print("wrote \(path)")
            }
        }
        FileHandle.standardError.write(Data(String(format: "done in %.1f s\n", Date().timeIntervalSince(started)).utf8))
    }
}

/// A progress bar on a terminal; plain lines when stderr is piped.
final class ProgressBar {
    private let label: String
    private let interactive = isatty(STDERR_FILENO) == 1
    private let started = Date()

    init(label: String) { self.label = label }

    func update(_ step: Int, _ total: Int) {
        let elapsed = Date().timeIntervalSince(started)
        let rate = Double(step) / max(elapsed, 1e-9)
        if interactive {
            let width = 30
            let filled = width * step / max(total, 1)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data(String(format: "\r%@ %@ %d/%d %.2f it/s", label, bar, step, total, rate).utf8))
        } else {
            FileHandle.standardError.write(Data(String(format: "%@ step %d/%d (%.2f it/s)\n", label, step, total, rate).utf8))
        }
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Writes tensors as NumPy `.npy` files (format 1.0, little-endian float32, C order).
enum NumPyFile {
    static func write(_ tensor: Tensor, to url: URL) throws {
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
        // Magic (6) + version (2) + length (2) + header + newline must be a multiple of 64.
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        data.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        tensor.withUnsafeBufferPointer {
            data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4))
        }
        try data.write(to: url, options: .atomic)
    }
}
