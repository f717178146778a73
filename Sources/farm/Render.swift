import ArgumentParser
import Foundation
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

    @Option(help: "A diffusers folder, a single-file .safetensors, a .ckpt checkpoint, or the bundled model `demo`.")
    var model: String

    @Option(help: "What to draw. Supports (word:1.2), (word), [word], BREAK and prompts longer than 75 tokens.")
    var prompt: String

    @Option(help: "What to steer away from.")
    var negative = ""

    @Option(help: "Image width in pixels (default: the init image's, else the model's native size).")
    var width: Int?

    @Option(help: "Image height in pixels (default: the init image's, else the model's native size).")
    var height: Int?

    @Option(help: "Sampler steps.")
    var steps = 20

    @Option(help: "Classifier-free guidance scale.")
    var cfg: Double = 7.5

    @Option(help: "Sampler: \(SamplerName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var sampler = "euler_a"

    @Option(help: "Seed of the first image.")
    var seed: UInt64 = 0

    @Option(help: "Noise generator: cpu (PyTorch's CPU generator, as diffusers on CPU) or philox (the web UI's NV generator).")
    var rng = "cpu"

    @Option(help: "Images rendered together (seeds seed, seed+1, …).")
    var batch = 1

    @Option(help: "Batches rendered one after another; batch k starts at seed + k·batch.")
    var batchCount = 1

    @Option(help: "Use the hidden states this many layers from the end (1 = last, 2 = penultimate).")
    var clipSkip = 1

    @Option(help: "Force the prediction type: epsilon or v_prediction (SD 2.x 768-v models).")
    var prediction: String?

    @Option(help: "img2img/inpainting source image (PNG).")
    var initImage: String?

    @Option(help: "How much of the init image to repaint: 0 keeps it, 1 ignores it.")
    var strength: Double = GenerationRequest.defaultStrength

    @Option(help: "Inpainting mask (PNG, white = repaint, same size as the init image).")
    var mask: String?

    @Option(help: "Blur (pixels) of the mask used to paste the result over the original.")
    var maskBlur: Double = GenerationRequest.defaultMaskBlur

    // Unconditional: a value such as -8,0,0,0 is the option's (and refused by validation), not an unknown flag.
    @Option(parsing: .unconditional, help: "Outpaint: extend the init image by L,R,T,B pixels and paint the new area.")
    var outpaint: String?

    @Option(help: "A ControlNet (diffusers folder); repeat for several.")
    var controlnet: [String] = []

    @Option(help: "The control image (PNG) of each --controlnet, in order.")
    var controlImage: [String] = []

    @Option(help: "The conditioning scale of each --controlnet (default 1).")
    var controlScale: [Double] = []

    @Flag(
        help:
            "Decode in tiles (memory bounded by the tile size; for large images). Tiles share the whole image's group-norm statistics, learnt in extra passes (several times the decode time)."
    )
    var vaeTiling = false

    @Flag(
        help:
            "Decode in tiles, each with its own group-norm statistics, as diffusers' tiling does (one decode's time; tiles differ slightly in tone).")
    var vaeTilingFast = false

    @Option(help: "The PNG file to write.")
    var out = "render.png"

    @Option(help: "Also write the final latents (before the VAE) as a NumPy .npy file.")
    var saveLatents: String?

    func validate() throws {
        guard steps >= 1 && steps <= 1000 else { throw ValidationError("--steps must be 1...1000, got \(steps)") }
        guard cfg.isFinite && cfg >= 0 && cfg <= 100 else { throw ValidationError("--cfg must be a number in 0...100") }
        guard batch >= 1 && batch <= 64 else { throw ValidationError("--batch must be 1...64, got \(batch)") }
        guard batchCount >= 1 && batchCount <= 10_000 else { throw ValidationError("--batch-count must be 1...10000, got \(batchCount)") }
        guard clipSkip >= 1 && clipSkip <= 12 else { throw ValidationError("--clip-skip must be 1...12, got \(clipSkip)") }
        for (name, value) in [("--width", width), ("--height", height)] {
            if let value, value <= 0 || value > 4096 { throw ValidationError("\(name) must be 1...4096, got \(value)") }
        }
        guard NoiseSource(rawValue: rng) != nil else { throw ValidationError("--rng must be cpu or philox, got \(rng)") }
        if let prediction, !["epsilon", "v_prediction"].contains(prediction) {
            throw ValidationError("--prediction must be epsilon or v_prediction, got \(prediction)")
        }
        do { _ = try SamplerName(parsing: sampler) } catch { throw ValidationError("--sampler: \(error)") }
        guard out.lowercased().hasSuffix(".png") else { throw ValidationError("--out must name a .png file") }
        guard strength.isFinite && strength > 0 && strength <= 1 else { throw ValidationError("--strength must be in (0, 1], got \(strength)") }
        guard maskBlur.isFinite && maskBlur >= 0 && maskBlur <= 64 else { throw ValidationError("--mask-blur must be 0...64") }
        if (mask != nil || outpaint != nil) && initImage == nil { throw ValidationError("--mask and --outpaint need --init-image") }
        if mask != nil && outpaint != nil { throw ValidationError("use --mask or --outpaint, not both") }
        if let outpaint { _ = try Render.extents(outpaint) }
        guard controlImage.count == controlnet.count else {
            throw ValidationError("give one --control-image per --controlnet (\(controlnet.count) nets, \(controlImage.count) images)")
        }
        guard controlScale.count <= controlnet.count, controlScale.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 10 }) else {
            throw ValidationError("--control-scale: at most one per --controlnet, each in 0...10")
        }
    }

    /// Parses `L,R,T,B`.
    static func extents(_ text: String) throws -> (left: Int, right: Int, top: Int, bottom: Int) {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, let l = parts[0], let r = parts[1], let t = parts[2], let b = parts[3],
            min(l, r, t, b) >= 0, max(l, r, t, b) <= 2048, l + r + t + b > 0
        else {
            throw ValidationError("--outpaint must be L,R,T,B: four non-negative pixel counts (at most 2048), not all 0; got \(text)")
        }
        return (l, r, t, b)
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
        let weights = try ModelWeights.load(try BundledModels.resolve(model), options: .init(predictionType: prediction))
        let pipeline = try Pipeline(weights: weights)
        var request = GenerationRequest(prompt: prompt)
        request.negative = negative
        request.clipSkip = clipSkip
        request.initImage = try initImage.map { try Render.readPNG($0, flag: "--init-image") }
        request.mask = try mask.map { try Render.readPNG($0, flag: "--mask") }
        request.maskBlur = maskBlur
        request.strength = strength
        request.outpaint = try outpaint.map { try Render.extents($0) }
        request.controls = try zip(controlnet, controlImage).enumerated().map { index, pair in
            (
                net: try ControlNet.load(URL(fileURLWithPath: pair.0)), image: try Render.readPNG(pair.1, flag: "--control-image"),
                scale: index < controlScale.count ? controlScale[index] : 1
            )
        }
        request.settings.width = width ?? 0
        request.settings.height = height ?? 0
        request.settings.steps = steps
        request.settings.guidance = Float(cfg)
        request.settings.sampler = try SamplerName(parsing: sampler)
        request.settings.batch = batch
        request.settings.noise = NoiseSource(rawValue: rng) ?? .cpu
        let prepared: PreparedGeneration
        do { prepared = try PreparedGeneration(request, pipeline: pipeline) } catch let error as GenerationError {
            throw ValidationError(error.message)
        }
        var settings = request.settings
        settings.width = prepared.width
        settings.height = prepared.height
        try pipeline.validate(settings)
        let modelName = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let total = batch * batchCount
        for round in 0..<batchCount {
            settings.seed = seed &+ UInt64(round * batch)
            let bar = ProgressBar(label: batchCount == 1 ? "sampling" : "batch \(round + 1)/\(batchCount)")
            let latents = try prepared.sample(
                pipeline, settings: settings,
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
            let images = try prepared.images(pipeline, latents: latents, tiledVAE: vaeTilingFast ? .perTile : vaeTiling ? .shared : nil) { index in
                var parameters = A1111Parameters(
                    prompt: prompt, steps: steps, sampler: settings.sampler.rawValue, cfg: cfg,
                    seed: seed &+ UInt64(round * batch + index), width: prepared.width,
                    height: prepared.height, model: modelName)
                parameters.negative = negative
                parameters.clipSkip = clipSkip
                if initImage != nil && outpaint == nil { parameters.denoisingStrength = strength }
                if mask != nil { parameters.maskBlur = maskBlur }
                parameters.philox = settings.noise == .philox
                return parameters.text
            }
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
