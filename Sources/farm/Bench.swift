import ArgumentParser
import Foundation
import StableDiffusion
import Tensors

/// `farm bench`: how fast this host renders full-size SD 1.5 or SDXL (or a given checkpoint), and how
/// close its UNet step comes to the machine's own sgemm rate. Each resolution runs in a child
/// process so that its peak memory is its own.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time SD 1.5- or SDXL-sized rendering on this host: UNet step, text encoder, VAE decode, 20 steps, memory.",
        discussion: """
            Without --model the networks have SD 1.5's shapes (UNet 320/640/1280/1280, CLIP ViT-L/14,
            the 128/256/512/512 VAE), or SDXL base's with --arch sdxl, and random fp16 weights (as downloads
            store them; they stay resident as halves), so nothing is downloaded. Each size ends with its peak
            memory: the largest resident set of the whole run, weights, text encoder, UNet steps and VAE decode
            included. The UNet step is one
            call with batch 2 (classifier-free guidance); its GFLOP/s count the matrix products and
            attention, and the sgemm rate is a square 2048³ product measured in the same run (before and
            after the UNet step, the faster taken).
            Tools/compare_pytorch.py runs this and diffusers on PyTorch side by side.
            """)

    @Option(help: "A checkpoint to time instead of random fp16 weights (diffusers folder, .safetensors, .ckpt, or demo).")
    var model: String?

    @Option(help: "The shapes of the random weights: sd15 (SD 1.5) or sdxl (SDXL 1.0 base: both text encoders, 1024² native).")
    var arch = "sd15"

    @Option(help: "How the random weights are stored: fp16 (as downloads are; they stay resident as halves) or fp32.")
    var weights = BenchWeights.fp16

    @Option(help: "Square image sizes to time, comma-separated.")
    var sizes = "512,256"

    @Option(help: "Sampler steps of the end-to-end run.")
    var steps = 20

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Option(
        help: "Where the networks run: cpu, or vulkan[:N] (farm devices lists them). On a device unet_gflops is 0 (products are not counted there).")
    var device = "cpu"

    @Flag(
        help:
            "Print one JSON object: blas_core, and per size unet_step_s, unet_gflops, sgemm_gflops, text_encode_s, vae_decode_s, total_20_steps_s, peak_rss_mb."
    )
    var json = false

    @Flag(help: "Decode in tiles with the whole image's group-norm statistics, as farm render --vae-tiling (several times the decode time).")
    var vaeTiling = false

    @Flag(help: "Decode in tiles, each with its own group-norm statistics, as farm render --vae-tiling-fast (one decode's time).")
    var vaeTilingFast = false

    @Flag(help: "Only report the BLAS core in use and the sgemm rate (a few seconds).")
    var blasOnly = false

    @Flag(help: "Only time the VAE decode against TAESD's (random SD 1.5-shaped weights) at each size and print the ratio.")
    var decoders = false

    @Flag(
        help:
            "Compare the fewer-or-cheaper-steps options (TAESD decode, ToMe, DeepCache, LCM 4 steps) with the full computation at each size: seconds per image, PSNR and SSIM."
    )
    var fewSteps = false

    @Option(help: "With --few-steps: images per option (seeds 1...N).")
    var fewStepSeeds = 2

    @Option(help: .hidden)
    var only: Int?

    func validate() throws {
        guard ComputeDevice(device) != nil else { throw ValidationError("--device \(device): expected cpu, vulkan or vulkan:N") }
        guard (1...150).contains(steps) else { throw ValidationError("--steps must be 1...150, got \(steps)") }
        guard !parsedSizes.isEmpty, parsedSizes.allSatisfy({ $0 >= 64 && $0 <= 2048 && $0 % 64 == 0 }) else {
            throw ValidationError("--sizes takes multiples of 64 from 64 to 2048, got \(sizes)")
        }
        guard (1...16).contains(fewStepSeeds) else { throw ValidationError("--few-step-seeds must be 1...16, got \(fewStepSeeds)") }
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be 1...256, got \(threads)") }
        guard ["sd15", "sdxl"].contains(arch) else { throw ValidationError("--arch takes sd15 or sdxl, got \(arch)") }
        if model != nil && arch != "sd15" { throw ValidationError("--arch sets the random weights' shapes; leave it out with --model") }
    }

    /// The VAE decode's tiling, as `farm render` takes it.
    var tiling: TileStatistics? { vaeTilingFast ? .perTile : vaeTiling ? .shared : nil }

    var parsedSizes: [Int] { sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        if let threads { ComputeThreads.set(threads) }
        if blasOnly {
            let rate = BenchRun.sgemmRate(side: 1024)
            print("BLAS core: \(BLASCore.status.description)")
            print(String(format: "sgemm: %.1f GFLOP/s (1024³, %d threads)", rate, ComputeThreads.count))
            let error = BenchRun.sgemmError()
            print(String(format: "sgemm check: largest error %.2g against a double-precision product", error))
            guard error < 1e-4 else { throw ExitCode.failure }
            return
        }
        if decoders { return compareDecoders() }
        if fewSteps { return try compareFewSteps() }
        if let only {
            let run = BenchRun(model: model, arch: arch, weights: weights, tiling: tiling, size: only, steps: steps, device: device)
            let figures = try run.measure()
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            FileHandle.standardOutput.write(try encoder.encode(figures))
            return
        }
        var results: [String: [String: Double]] = [:]
        for size in parsedSizes {
            log("farm bench: \(size)×\(size)…")
            results[String(size)] = try child(size: size)
        }
        if json { return try printJSON(BenchReport(sizes: results, blasCore: BLASCore.status.core)) }
        let name = arch == "sdxl" ? "SDXL 1.0 base" : "SD 1.5"
        let shapes = "\(name) shapes, random \(weights.rawValue) weights"
        print("threads: \(threads ?? ComputeThreads.count), model: \(model ?? shapes), device: \(try Bench.deviceName(device))")
        print("BLAS core: \(BLASCore.status.description)")
        for size in parsedSizes {
            guard let f = results[String(size)] else { continue }
            let ratio = f["unet_gflops"]! / f["sgemm_gflops"]! * 100
            print(
                String(
                    format:
                        "%4d×%-4d UNet step (CFG, batch 2) %7.2f s  %6.1f GFLOP/s = %5.1f %% of sgemm %6.1f | text %6.3f s | VAE decode %6.2f s | %d steps %7.1f s | peak %6.0f MB",
                    size, size, f["unet_step_s"]!, f["unet_gflops"]!, ratio, f["sgemm_gflops"]!, f["text_encode_s"]!,
                    f["vae_decode_s"]!, steps, f["total_20_steps_s"]!, f["peak_rss_mb"]!))
            print(Self.peakLine(model: model ?? name, size: size, megabytes: f["peak_rss_mb"]!, steps: steps, tiled: tiling != nil))
        }
    }

    /// The size's peak memory in one line: the most the run held at once (its largest resident set), weights loaded,
    /// text encoder, UNet steps and VAE decode all included. GB here are 1024 MiB.
    static func peakLine(model: String, size: Int, megabytes: Double, steps: Int, tiled: Bool) -> String {
        String(
            format: "peak memory: %.2f GB (%.0f MiB) for %@ %d×%d txt2img, %d steps: weights, text encoder, UNet steps, VAE decode%@",
            megabytes / 1024, megabytes, model as NSString, size, size, steps, (tiled ? " in tiles" : "") as NSString)
    }

    /// Runs one size in a fresh process and reads back its figures.
    private func child(size: Int) throws -> [String: Double] {
        let process = Process()
        process.executableURL = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        var arguments = ["bench", "--only", String(size), "--steps", String(steps), "--arch", arch, "--weights", weights.rawValue]
        if vaeTiling { arguments.append("--vae-tiling") }
        if vaeTilingFast { arguments.append("--vae-tiling-fast") }
        if let model { arguments += ["--model", model] }
        if let threads { arguments += ["--threads", String(threads)] }
        arguments += ["--device", device]
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let figures = try? JSONDecoder().decode([String: Double].self, from: data) else {
            throw ValidationError("the \(size)×\(size) run failed (exit status \(process.terminationStatus))")
        }
        return figures
    }
}

/// `farm bench --json`: each size's figures under its side (`"512": {...}`), and `blas_core`.
private struct BenchReport: Encodable {
    /// Figures by image side.
    var sizes: [String: [String: Double]]
    /// The BLAS core in use.
    var blasCore: String

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for (size, figures) in sizes { try container.encode(figures, forKey: Key(stringValue: size)) }
        try container.encode(blasCore, forKey: Key(stringValue: "blas_core"))
    }
}

private func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// How `farm bench`'s random weights are stored.
enum BenchWeights: String, ExpressibleByArgument, CaseIterable {
    /// Half precision, as downloads are: resident as halves, widened where products read them.
    case fp16
    /// Float32: what keeping halves costs in time, against the same run.
    case fp32

    /// The tensors' element type.
    var element: ElementType { self == .fp16 ? .float16 : .float32 }
}

/// One resolution's measurements, in this process.
private struct BenchRun {
    let model: String?
    /// `sd15` or `sdxl`: the random weights' shapes when no model is given.
    let arch: String
    /// How the random weights are stored.
    let weights: BenchWeights
    /// The VAE decode's tiling (nil: the whole image at once).
    let tiling: TileStatistics?
    let size: Int
    let steps: Int
    /// `--device`: cpu or vulkan[:N].
    let device: String

    func measure() throws -> [String: Double] {
        let weights =
            try model.map { try ModelWeights.load(try BundledModels.resolve($0)) }
            ?? (arch == "sdxl" ? ModelWeights.randomXL(element: self.weights.element) : ModelWeights.random(element: self.weights.element))
        let pipeline = try Pipeline(weights: weights).running(on: try openComputeDevice(device))
        // Timed before and after the UNet step, the faster taken: one 256×256 run measured half the
        // machine's rate before the UNet (another process's pages being reclaimed, or a core taken).
        var sgemm = Self.sgemmRate(side: 2048)
        let prompt = "a lighthouse on a cliff at sunset, oil painting, detailed"
        let textTime = Self.best(3) { _ = try? pipeline.encodePrompts(prompt, negative: "blurry") }
        let (conditional, unconditional) = try pipeline.encodePrompts(prompt, negative: "blurry")
        let latentSide = size / pipeline.latentScale
        let latents = Tensor(
            shape: [2, pipeline.unet.config.inChannels, latentSide, latentSide],
            values: (0..<(2 * pipeline.unet.config.inChannels * latentSide * latentSide)).map { Float(($0 * 7919) % 997) / 498.5 - 1 })
        var guided = Pipeline.Settings()
        (guided.width, guided.height) = (size, size)
        let context = Tensor.concat([unconditional.context, conditional.context], axis: 0)
        let added = try pipeline.addedConditioning(conditional: conditional, unconditional: unconditional, settings: guided)
        log("  UNet step at \(size)×\(size)… (model built: \(memoryLine()))")
        // The first call counts the products and warms the buffers; a 1024² step takes a minute on two cores, so
        // large sizes are timed once.
        let (_, flops) = FlopCounter.count { pipeline.unet(latents, timestep: 500, context: context, added: added) }
        let unetTime = Self.best(size >= 1024 ? 1 : 2) { _ = pipeline.unet(latents, timestep: 500, context: context, added: added) }
        sgemm = max(sgemm, Self.sgemmRate(side: 2048))
        log("  VAE decode… (after the UNet steps: \(memoryLine()))")
        let one = Tensor(shape: [1, 4, latentSide, latentSide], values: Array(latents.scalars.prefix(4 * latentSide * latentSide)))
        let decodeTime = Self.best(size >= 1024 ? 1 : 2) { _ = pipeline.decode(one, tiled: tiling) }
        log("  \(steps) steps end to end… (after the decodes: \(memoryLine()))")
        var settings = Pipeline.Settings()
        (settings.width, settings.height, settings.steps) = (size, size, steps)
        settings.sampler = .dpmpp2m
        var last = DispatchTime.now().uptimeNanoseconds
        // Each step's time on the progress log: the end-to-end figure's parts, against the UNet step's best.
        let stepped: (Int, Int) -> Bool = { step, count in
            let now = DispatchTime.now().uptimeNanoseconds
            log(String(format: "    step %d/%d: %.2f s", step, count, Double(now - last) / 1e9))
            last = now
            return true
        }
        let total = Self.seconds {
            guard let (c, u) = try? pipeline.encodePrompts(prompt, negative: "blurry"),
                let final = try? pipeline.sample(conditional: c, unconditional: u, settings: settings, progress: stepped)
            else { return }
            log(String(format: "    decode: %.2f s", Self.seconds { _ = pipeline.decode(final, tiled: tiling) }))
        }
        return [
            "unet_step_s": unetTime, "unet_gflops": Double(flops) / unetTime / 1e9, "sgemm_gflops": sgemm,
            "text_encode_s": textTime, "vae_decode_s": decodeTime, "total_20_steps_s": total, "peak_rss_mb": peakRSSMegabytes(),
        ]
    }

    static func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func best(_ repeats: Int, _ body: () -> Void) -> Double {
        (0..<repeats).map { _ in seconds(body) }.min()!
    }

    /// The largest difference between a 67×45×83 product and the same product summed in double precision:
    /// a core's kernels wrong for this processor show here.
    static func sgemmError() -> Double {
        let (m, n, k) = (67, 45, 83)
        let a = (0..<(m * k)).map { Float(($0 * 7) % 19) / 19 - 0.5 }
        let b = (0..<(k * n)).map { Float(($0 * 5) % 23) / 23 - 0.5 }
        var c = [Float](repeating: 0, count: m * n)
        Gemm.multiply(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                let exact = (0..<k).reduce(0.0) { $0 + Double(a[i * k + $1]) * Double(b[$1 * n + j]) }
                worst = max(worst, abs(exact - Double(c[i * n + j])))
            }
        }
        return worst
    }

    static func sgemmRate(side: Int) -> Double {
        var a = Tensor(uninitialized: [side, side])
        var b = Tensor(uninitialized: [side, side])
        var c = Tensor(uninitialized: [side, side])
        let (pa, pb, pc) = (a.mutablePointer(), b.mutablePointer(), c.mutablePointer())
        for i in 0..<(side * side) {
            pa[i] = Float(i % 17) / 17
            pb[i] = Float(i % 13) / 13
        }
        let time = best(5) { Gemm.multiply(m: side, n: side, k: side, a: pa, lda: side, b: pb, ldb: side, c: pc, ldc: side) }
        withExtendedLifetime((a, b, c)) {}
        return 2 * pow(Double(side), 3) / time / 1e9
    }

    /// "resident N MB, peak M MB" from /proc/self/status, and what the buffer pool keeps, for the progress log.
    func memoryLine() -> String {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return "" }
        func megabytes(_ key: String) -> Int {
            let line = status.split(separator: "\n").first { $0.hasPrefix(key) } ?? ""
            // "VmRSS:\t  123456 kB": the tab's padding runs out at eight digits (10 GB), so split on tabs too.
            return (Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? 0) / 1024
        }
        return "resident \(megabytes("VmRSS:")) MB, peak \(megabytes("VmHWM:")) MB, buffer pool \(BufferPool.pooledBytesNow >> 20) MB"
    }

    func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
