import ArgumentParser
import Foundation
import Imaging
import StableDiffusion
import Tensors

/// `farm render`: draws images locally with the diffusion engine, no farm needed.
struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render images on this machine with a Stable Diffusion model.",
        discussion: """
            Loads a diffusers folder, a single-file .safetensors or a .ckpt, and writes PNG files that carry the \
            generation parameters in a `parameters` text chunk (the AUTOMATIC1111 format). With --batch N the \
            images use seeds seed, seed+1, … and are written as FILE-1.png, FILE-2.png, ….
            """)

    @Option(help: "A diffusers folder, a single-file .safetensors or a .ckpt checkpoint.")
    var model: String

    @Option(help: "What to draw. Supports (word:1.2), (word), [word], BREAK and prompts longer than 75 tokens.")
    var prompt: String

    @Option(help: "What to steer away from.")
    var negative = ""

    @Option(help: "Image width in pixels.")
    var width = 512

    @Option(help: "Image height in pixels.")
    var height = 512

    @Option(help: "Sampler steps.")
    var steps = 20

    @Option(help: "Classifier-free guidance scale.")
    var cfg: Double = 7.5

    @Option(help: "Sampler: \(SamplerName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var sampler = "euler_a"

    @Option(help: "Seed of the first image.")
    var seed: UInt64 = 0

    @Option(help: "Noise generator: cpu (PyTorch's CPU generator, as diffusers on CPU).")
    var rng = "cpu"

    @Option(help: "Images rendered together (seeds seed, seed+1, …).")
    var batch = 1

    @Option(help: "Use the hidden states this many layers from the end (1 = last, 2 = penultimate).")
    var clipSkip = 1

    @Option(help: "Force the prediction type: epsilon or v_prediction (SD 2.x 768-v models).")
    var prediction: String?

    @Option(help: "The PNG file to write.")
    var out = "render.png"

    @Option(help: "Also write the final latents (before the VAE) as a NumPy .npy file.")
    var saveLatents: String?

    func validate() throws {
        guard steps >= 1 && steps <= 1000 else { throw ValidationError("--steps must be 1...1000, got \(steps)") }
        guard cfg.isFinite && cfg >= 0 && cfg <= 100 else { throw ValidationError("--cfg must be a number in 0...100") }
        guard batch >= 1 && batch <= 64 else { throw ValidationError("--batch must be 1...64, got \(batch)") }
        guard clipSkip >= 1 && clipSkip <= 12 else { throw ValidationError("--clip-skip must be 1...12, got \(clipSkip)") }
        guard width > 0 && height > 0 && width * height <= 4096 * 4096 else {
            throw ValidationError("--width and --height must be positive and at most 4096×4096 pixels in all")
        }
        guard rng == "cpu" else {
            throw ValidationError("--rng \(rng) is not available: this build reproduces PyTorch's CPU generator (--rng cpu) only")
        }
        if let prediction, !["epsilon", "v_prediction"].contains(prediction) {
            throw ValidationError("--prediction must be epsilon or v_prediction, got \(prediction)")
        }
        do { _ = try SamplerName(parsing: sampler) } catch { throw ValidationError("--sampler: \(error)") }
        guard out.lowercased().hasSuffix(".png") else { throw ValidationError("--out must name a .png file") }
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
        let weights = try ModelWeights.load(URL(fileURLWithPath: model), options: .init(predictionType: prediction))
        let pipeline = try Pipeline(weights: weights)
        var settings = Pipeline.Settings()
        settings.width = width
        settings.height = height
        settings.steps = steps
        settings.guidance = Float(cfg)
        settings.sampler = try SamplerName(parsing: sampler)
        settings.seed = seed
        settings.batch = batch
        try pipeline.validate(settings)
        let (conditional, unconditional) = try pipeline.encodePrompts(prompt, negative: negative, clipSkip: clipSkip)
        let bar = ProgressBar(label: "sampling")
        let latents = try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings) { step, total in
            bar.update(step, total)
            return true
        }
        bar.finish()
        if let saveLatents { try NumPyFile.write(latents, to: URL(fileURLWithPath: saveLatents)) }
        let images = pipeline.decode(latents)
        let modelName = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        for (index, pixels) in images.enumerated() {
            let text = A1111Parameters(prompt: prompt, negative: negative, steps: steps, sampler: settings.sampler,
                                       cfg: cfg, seed: seed &+ UInt64(index), width: width, height: height,
                                       model: modelName, clipSkip: clipSkip).text
            let image = try PNGImage(width: width, height: height, format: .rgb, pixels: pixels, text: [("parameters", text)])
            let path = images.count == 1 ? out : out.replacingOccurrences(of: ".png", with: "-\(index + 1).png", options: [.backwards, .caseInsensitive])
            try image.pngData().write(to: URL(fileURLWithPath: path), options: .atomic)
            print("wrote \(path)")
        }
        FileHandle.standardError.write(Data(String(format: "done in %.1f s\n", Date().timeIntervalSince(started)).utf8))
    }
}

/// The generation parameters as AUTOMATIC1111 writes them into PNGs, so other tools read them back.
struct A1111Parameters {
    var prompt: String, negative: String, steps: Int, sampler: SamplerName, cfg: Double, seed: UInt64
    var width: Int, height: Int, model: String, clipSkip: Int

    /// The web UI's names for the samplers.
    static let samplerNames: [SamplerName: String] = [
        .ddim: "DDIM", .ddpm: "DDPM", .pndm: "PLMS", .lms: "LMS", .euler: "Euler", .eulerAncestral: "Euler a",
        .heun: "Heun", .dpmpp2m: "DPM++ 2M", .dpmpp2mKarras: "DPM++ 2M Karras",
    ]

    var text: String {
        var lines = [prompt]
        if !negative.isEmpty { lines.append("Negative prompt: \(negative)") }
        var settings = "Steps: \(steps), Sampler: \(A1111Parameters.samplerNames[sampler] ?? sampler.rawValue), CFG scale: \(cfg), Seed: \(seed), Size: \(width)x\(height), Model: \(model)"
        if clipSkip > 1 { settings += ", Clip skip: \(clipSkip)" }
        lines.append(settings)
        return lines.joined(separator: "\n")
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
            let width = 30, filled = width * step / max(total, 1)
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
        tensor.withUnsafeBufferPointer { data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
        try data.write(to: url, options: .atomic)
    }
}
