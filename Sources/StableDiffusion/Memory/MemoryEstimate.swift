/// How many output pixels a machine's memory lets the engine render at once: what is left of the memory after a
/// reserve and the loaded weights, divided by the memory a render takes per output pixel. Deliberately
/// conservative: a limit too low only sends large tasks to other workers, one too high ends in the kernel's OOM
/// killer.
///
/// The bytes per pixel were measured with `farm bench --sizes 256,512,768 --steps 1` (random Float32 weights, a UNet
/// step with batch 2 for classifier-free guidance, a one-step render and VAE decodes; peak resident memory less the
/// memory with the model built) on the 2-core build machine, 2026-12-03:
/// - SD 1.5's shapes: 377, 1076 and 1930 MiB of working memory, so a rise of 3728 bytes per pixel from 256² to 512²
///   and 2733 from 512² to 768² (the buffer pool's fixed part weighs less as images grow).
/// - SDXL base's shapes (`--arch sdxl`) with one transformer layer per block instead of 1/2/10, which keeps the
///   activations' shapes (the buffer pool reuses them from layer to layer) and the weights within the machine:
///   343, 962 and 1972 MiB, a rise of 3301 and 3235 bytes per pixel. Its full-latent level has no attention.
/// Each class's figure is its steeper rise with a margin of a quarter: 4700 bytes for SD 1.x/2.x; for SDXL-class
/// UNets the base's rise scaled by 384/320 first (the refiner's full-latent level is 384 channels wide, the
/// base's 320), 5000 bytes. The fixed ~190 MiB the lines leave falls in the reserve.
public enum MemoryEstimate {
    /// The UNet classes whose activations differ in size per pixel.
    public enum Architecture: String, Sendable, CaseIterable {
        /// SD 1.x and 2.x (320/640/1280/1280 channels; 2.x has the same widths).
        case sd
        /// SDXL's base and refiner (the refiner's widest full-resolution level has 384 channels).
        case sdxl
    }

    /// Bytes of working memory per output pixel of a render with a UNet of `architecture` (nil: unknown, so the
    /// largest); see the type's comment for the measurements.
    public static func bytesPerPixel(_ architecture: Architecture?) -> Int {
        switch architecture {
        case .sd: return 4_700
        case .sdxl, nil: return 5_000
        }
    }

    /// Memory kept out of every estimate: the system's and the worker's own (its input-image cache, PNG encoding,
    /// the allocator's slack) as 1 GiB plus a tenth of the memory.
    public static func reserveBytes(memoryBytes: UInt64) -> UInt64 { (1 << 30) + memoryBytes / 10 }

    /// The most output pixels (width × height) that fit in `memoryBytes` with `weightsBytes` of weights loaded and a
    /// UNet of `architecture`; 0 when the weights alone leave no room. Never above `Int32.max` (the farm stores it so).
    public static func maxPixels(memoryBytes: UInt64, weightsBytes: Int, architecture: Architecture?) -> Int {
        let reserved = reserveBytes(memoryBytes: memoryBytes) + UInt64(max(0, weightsBytes))
        guard memoryBytes > reserved else { return 0 }
        return Int(min((memoryBytes - reserved) / UInt64(bytesPerPixel(architecture)), UInt64(Int32.max)))
    }
}
