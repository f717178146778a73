import Foundation
import StableDiffusion
import Tensors

/// `farm bench --decoders`: how much faster TAESD decodes than the full VAE, both with SD 1.5's shapes and random
/// fp16 (or fp32) weights, on the same latents, each timed as the best of two runs.
extension Bench {
    func compareDecoders() {
        let vae = VAE.random(element: weights.element)
        let tiny = TinyAutoencoder.random(element: weights.element)
        print("threads: \(threads ?? ComputeThreads.count), SD 1.5 VAE and TAESD shapes, random \(weights.rawValue) weights")
        for size in parsedSizes {
            let side = size / vae.downscaleFactor
            let latents = Tensor(shape: [1, 4, side, side], values: (0..<(4 * side * side)).map { Float(($0 * 7919) % 997) / 498.5 - 1 })
            FileHandle.standardError.write(Data("farm bench: decoders at \(size)×\(size)…\n".utf8))
            // Unpooled, as the pipeline decodes (`Pipeline.decode`).
            let full = Self.fastest(of: 2) { BufferPool.unpooled { _ = vae.decode(latents.scaled(by: 1 / Float(vae.config.scalingFactor))) } }
            let fast = Self.fastest(of: 2) { BufferPool.unpooled { _ = tiny.decode(latents) } }
            print(
                String(
                    format: "%4d×%-4d VAE decode %7.2f s | TAESD decode %6.3f s | TAESD %5.1f× faster", size, size, full, fast,
                    full / fast))
        }
    }

    /// The shortest of `runs` timings of `body`, in seconds.
    static func fastest(of runs: Int, _ body: () -> Void) -> Double {
        (0..<runs).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }.min() ?? 0
    }
}
