import Foundation
import Imaging
import Testing

/// Two 24×16 RGB test images: `first` a pattern, `second` it with a small pattern added (mod 256).
private func patternPair() -> ([UInt8], [UInt8]) {
    let first = (0..<(24 * 16 * 3)).map { UInt8(($0 * 37) % 256) }
    let second = (0..<(24 * 16 * 3)).map { (index: Int) -> UInt8 in
        let sum: Int = (index * 37) % 256 + (index * 11) % 23
        return UInt8(sum % 256)
    }
    return (first, second)
}

/// A smooth 24×16 RGB gradient and it with ±4 of structured noise (clipped).
private func smoothPair() -> ([UInt8], [UInt8]) {
    var (clean, noisy) = ([UInt8](), [UInt8]())
    for y in 0..<16 {
        for x in 0..<24 {
            let noise: Int = (x * 7 + y * 13) % 9 - 4
            let values: [Int] = [(x * 10 + y * 3) % 256, (x * 5 + y * 9) % 256, (x * x + y) % 256]
            for value in values {
                clean.append(UInt8(value))
                noisy.append(UInt8(min(max(value + noise, 0), 255)))
            }
        }
    }
    return (clean, noisy)
}

/// PSNR and SSIM agree with scikit-image 0.25's `peak_signal_noise_ratio` and `structural_similarity`
/// (channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255) on the same pixels.
@Test func imageQualityMatchesScikitImage() {
    let (a, b) = patternPair()
    #expect(abs(ImageQuality.psnr(b, a) - 14.277647629285795) < 1e-9)
    #expect(abs(ImageQuality.ssim(b, a, width: 24, height: 16) - 0.744248983774542) < 1e-9)
    let (c, d) = smoothPair()
    #expect(abs(ImageQuality.psnr(d, c) - 39.91894478259065) < 1e-9)
    #expect(abs(ImageQuality.ssim(d, c, width: 24, height: 16) - 0.9906790902166711) < 1e-9)
}

/// Known values: identical images (infinite PSNR, SSIM 1), a uniform offset of 5 (MSE 25), flat images (luminance only).
@Test func imageQualityKnownValues() {
    let (a, _) = patternPair()
    #expect(ImageQuality.psnr(a, a) == .infinity)
    #expect(abs(ImageQuality.ssim(a, a, width: 24, height: 16) - 1) < 1e-12)
    let flat = [UInt8](repeating: 100, count: 24 * 16 * 3)
    let brighter = [UInt8](repeating: 105, count: 24 * 16 * 3)
    #expect(abs(ImageQuality.psnr(brighter, flat) - 10 * log10(255.0 * 255 / 25)) < 1e-12)
    let c1: Double = 0.01 * 255 * 0.01 * 255
    #expect(abs(ImageQuality.ssim(brighter, flat, width: 24, height: 16) - (2 * 100 * 105 + c1) / (100 * 100 + 105 * 105 + c1)) < 1e-12)
}
