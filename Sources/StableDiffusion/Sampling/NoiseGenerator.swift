import Foundation

/// A source of standard-normal noise for latents; one per image of a batch.
public protocol NoiseGenerator {
    /// The next `count` standard-normal float32 values.
    mutating func randn(_ count: Int) -> [Float]
}

extension TorchGenerator: NoiseGenerator {}

extension NoiseSource {
    /// A generator for `seed`.
    public func generator(seed: UInt64) -> any NoiseGenerator {
        switch self {
        case .cpu: return TorchGenerator(seed: seed)
        case .philox: return PhiloxGenerator(seed: seed)
        }
    }
}
