import Foundation
import Imaging
import StableDiffusion
import Tensors

/// `farm bench --few-steps`: what each fewer-or-cheaper-steps option saves and costs. Every option renders the
/// same prompt and seeds as the full computation (DPM++ 2M, `--steps` steps, CFG 7.5, VAE decode) and is timed end
/// to end (sampling and decode, text encoding left out; the TAESD row decodes the full computation's latents and
/// counts their sampling time); its pictures are compared with the full computation's by PSNR and SSIM over the
/// 8-bit pixels, averaged over the seeds.
extension Bench {
    /// One option of the comparison: a name and how it changes the full computation's settings.
    struct FewStepOption {
        let name: String
        var tinyDecode = false
        var change: (inout Pipeline.Settings) -> Void = { _ in }
    }

    /// The options compared, the full computation first.
    static var fewStepOptions: [FewStepOption] {
        [
            FewStepOption(name: "full computation"),
            FewStepOption(name: "TAESD decode", tinyDecode: true),
            FewStepOption(name: "ToMe 0.3") { $0.tokenMergingRatio = 0.3 },
            FewStepOption(name: "ToMe 0.5") { $0.tokenMergingRatio = 0.5 },
            FewStepOption(name: "DeepCache 3, branch 0") { $0.deepCacheInterval = 3 },
            FewStepOption(name: "DeepCache 3 + ToMe 0.5") { ($0.deepCacheInterval, $0.tokenMergingRatio) = (3, 0.5) },
            FewStepOption(name: "LCM 4 steps, CFG 1") { ($0.sampler, $0.steps, $0.guidance) = (.lcm, 4, 1) },
        ]
    }

    func compareFewSteps() throws {
        let model = try self.model.map { try ModelWeights.load(try BundledModels.resolve($0)) } ?? ModelWeights.random(element: weights.element)
        var pipeline = try Pipeline(weights: model)
        let tiny = TinyAutoencoder.random(element: weights.element)
        let tinyFits = tiny.downscaleFactor == pipeline.latentScale && tiny.config.latentChannels == pipeline.vae.config.latentChannels
        let seeds = (1...fewStepSeeds).map { UInt64($0) }
        let (conditional, unconditional) = try pipeline.encodePrompts("a lighthouse on a cliff at sunset, oil painting, detailed", negative: "blurry")
        print("threads: \(threads ?? ComputeThreads.count), model: \(self.model ?? "SD 1.5 shapes, random \(weights.rawValue) weights")")
        for size in parsedSizes {
            print(
                String(
                    format: "%d×%d, DPM++ 2M %d steps CFG 7.5 unless named, seeds 1...%d; seconds per image (sampling + decode)", size, size, steps,
                    seeds.count))
            print("option                    |  s/image | speed-up | PSNR dB |  SSIM")
            var reference: [[UInt8]] = []
            // The full computation's latents and sampling time: TAESD decodes the same latents.
            var fullLatents: [Tensor] = []
            var fullSampling = 0.0
            var fullSeconds = 0.0
            for option in Self.fewStepOptions where !option.tinyDecode || tinyFits {
                FileHandle.standardError.write(Data("farm bench: \(option.name) at \(size)×\(size)…\n".utf8))
                pipeline.tinyAutoencoder = option.tinyDecode ? tiny : nil
                var images: [[UInt8]] = []
                var seconds = 0.0
                for (index, seed) in seeds.enumerated() {
                    var settings = Pipeline.Settings()
                    (settings.width, settings.height, settings.steps, settings.sampler, settings.seed) = (size, size, steps, .dpmpp2m, seed)
                    option.change(&settings)
                    let latents: Tensor
                    if option.tinyDecode {
                        (latents, seconds) = (fullLatents[index], seconds + fullSampling / Double(seeds.count))
                    } else {
                        let start = DispatchTime.now().uptimeNanoseconds
                        latents = try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings)
                        let sampling = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        seconds += sampling
                        if reference.isEmpty { (fullSampling, fullLatents) = (fullSampling + sampling, fullLatents + [latents]) }
                    }
                    let start = DispatchTime.now().uptimeNanoseconds
                    images.append(pipeline.decode(latents)[0])
                    seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                }
                seconds /= Double(seeds.count)
                if reference.isEmpty { (reference, fullSeconds) = (images, seconds) }
                let psnr = zip(images, reference).map { ImageQuality.psnr($0, $1) }.reduce(0, +) / Double(seeds.count)
                let ssim = zip(images, reference).map { ImageQuality.ssim($0, $1, width: size, height: size) }.reduce(0, +) / Double(seeds.count)
                print(
                    option.name.padding(toLength: 25, withPad: " ", startingAt: 0)
                        + String(format: " | %8.2f | %7.2f× | %7.2f | %.4f", seconds, fullSeconds / seconds, psnr, ssim))
            }
        }
    }
}
