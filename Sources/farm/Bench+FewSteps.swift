import Foundation
import Imaging
import StableDiffusion
import Tensors

/// `farm bench --few-steps`: what each fewer-or-cheaper-steps option saves and costs. Every option renders the
/// same prompt and seeds as the full computation (DPM++ 2M, `--steps` steps, CFG 7.5, VAE decode) and is timed end
/// to end (sampling and decode, text encoding left out; the TAESD row decodes the full computation's latents and
/// counts their sampling time); its pictures are compared with the full computation's by PSNR and SSIM over the
/// 8-bit pixels, averaged over the seeds. The options take turns within each seed, so that a drift in the machine's
/// speed falls on all of them alike.
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
            let options = Self.fewStepOptions.filter { !$0.tinyDecode || tinyFits }
            // Seeds outside, options inside: this machine's speed drifts by a third over minutes, and running each
            // option's seeds in turn would give that drift to whole rows; taken in turns, every option shares it.
            var images = [[[UInt8]]](repeating: [], count: options.count)
            var seconds = [Double](repeating: 0, count: options.count)
            for seed in seeds {
                // The full computation's latents and sampling time: TAESD decodes the same latents.
                var fullLatents: Tensor?
                var fullSampling = 0.0
                for (index, option) in options.enumerated() {
                    FileHandle.standardError.write(Data("farm bench: \(option.name) at \(size)×\(size), seed \(seed)…\n".utf8))
                    pipeline.tinyAutoencoder = option.tinyDecode ? tiny : nil
                    var settings = Pipeline.Settings()
                    (settings.width, settings.height, settings.steps, settings.sampler, settings.seed) = (size, size, steps, .dpmpp2m, seed)
                    option.change(&settings)
                    let latents: Tensor
                    if option.tinyDecode, let fullLatents {
                        (latents, seconds[index]) = (fullLatents, seconds[index] + fullSampling)
                    } else {
                        let start = DispatchTime.now().uptimeNanoseconds
                        latents = try pipeline.sample(conditional: conditional, unconditional: unconditional, settings: settings)
                        let sampling = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        seconds[index] += sampling
                        if index == 0 { (fullSampling, fullLatents) = (sampling, latents) }
                    }
                    let start = DispatchTime.now().uptimeNanoseconds
                    images[index].append(pipeline.decode(latents)[0])
                    seconds[index] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                }
            }
            let fullSeconds = seconds[0] / Double(seeds.count)
            for (index, option) in options.enumerated() {
                let perImage = seconds[index] / Double(seeds.count)
                let pairs = zip(images[index], images[0])
                let psnr = pairs.map { ImageQuality.psnr($0, $1) }.reduce(0, +) / Double(seeds.count)
                let ssim = pairs.map { ImageQuality.ssim($0, $1, width: size, height: size) }.reduce(0, +) / Double(seeds.count)
                print(
                    option.name.padding(toLength: 25, withPad: " ", startingAt: 0)
                        + String(format: " | %8.2f | %7.2f× | %7.2f | %.4f", perImage, fullSeconds / perImage, psnr, ssim))
            }
        }
    }
}
