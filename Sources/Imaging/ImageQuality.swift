import Foundation

/// How close an image is to a reference: PSNR and SSIM over 8-bit pixels, for measuring what a lossy shortcut
/// (TAESD, token merging, DeepCache, fewer steps) costs against the full computation.
public enum ImageQuality {
    /// Peak signal-to-noise ratio in dB of `image` against `reference` (same length, 8-bit samples):
    /// 10·log10(255² / mean squared error); infinity for identical images.
    public static func psnr(_ image: [UInt8], _ reference: [UInt8]) -> Double {
        precondition(image.count == reference.count && !image.isEmpty, "PSNR needs two images of the same size")
        var sum = 0.0
        for (a, b) in zip(image, reference) {
            let difference = Double(a) - Double(b)
            sum += difference * difference
        }
        let mse = sum / Double(image.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

    /// Structural similarity (Wang et al. 2004) of `image` against `reference`, interleaved 8-bit pixels of
    /// `width` × `height` with `channels` samples each: the mean over channels and over every position where an
    /// 11×11 Gaussian window (σ 1.5) fits, with K1 0.01, K2 0.03 and population statistics, as scikit-image's
    /// `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`.
    /// Images smaller than the window are compared as one window of their own size, unweighted.
    public static func ssim(_ image: [UInt8], _ reference: [UInt8], width: Int, height: Int, channels: Int = 3) -> Double {
        precondition(image.count == reference.count && image.count == width * height * channels, "SSIM needs two \(width)x\(height) images")
        let (c1, c2): (Double, Double) = (0.01 * 255 * 0.01 * 255, 0.03 * 255 * 0.03 * 255)
        let radius = 5
        guard width > 2 * radius && height > 2 * radius else {
            return (0..<channels).map { channel in
                let a = stride(from: channel, to: image.count, by: channels).map { Double(image[$0]) }
                let b = stride(from: channel, to: reference.count, by: channels).map { Double(reference[$0]) }
                let (ma, mb) = (a.reduce(0, +) / Double(a.count), b.reduce(0, +) / Double(b.count))
                let va = a.reduce(0) { $0 + ($1 - ma) * ($1 - ma) } / Double(a.count)
                let vb = b.reduce(0) { $0 + ($1 - mb) * ($1 - mb) } / Double(b.count)
                let cov = zip(a, b).reduce(0) { $0 + ($1.0 - ma) * ($1.1 - mb) } / Double(a.count)
                return (2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
            }.reduce(0, +) / Double(channels)
        }
        let raw = (-radius...radius).map { exp(-Double($0 * $0) / (2 * 1.5 * 1.5)) }
        let weights = raw.map { $0 / raw.reduce(0, +) }
        let (outWidth, outHeight) = (width - 2 * radius, height - 2 * radius)
        var total = 0.0
        for channel in 0..<channels {
            // The five local statistics, each a separable Gaussian filter over the valid positions.
            func filtered(_ value: (Double, Double) -> Double) -> [Double] {
                var rows = [Double](repeating: 0, count: outWidth * height)
                for y in 0..<height {
                    for x in 0..<outWidth {
                        var sum = 0.0
                        for (k, weight) in weights.enumerated() {
                            let index = (y * width + x + k) * channels + channel
                            sum += weight * value(Double(image[index]), Double(reference[index]))
                        }
                        rows[y * outWidth + x] = sum
                    }
                }
                var result = [Double](repeating: 0, count: outWidth * outHeight)
                for y in 0..<outHeight {
                    for x in 0..<outWidth {
                        var sum = 0.0
                        for (k, weight) in weights.enumerated() { sum += weight * rows[(y + k) * outWidth + x] }
                        result[y * outWidth + x] = sum
                    }
                }
                return result
            }
            let (ma, mb) = (filtered { a, _ in a }, filtered { _, b in b })
            let (aa, bb, ab) = (filtered { a, _ in a * a }, filtered { _, b in b * b }, filtered { a, b in a * b })
            var sum = 0.0
            for i in ma.indices {
                let (va, vb, cov) = (aa[i] - ma[i] * ma[i], bb[i] - mb[i] * mb[i], ab[i] - ma[i] * mb[i])
                sum += (2 * ma[i] * mb[i] + c1) * (2 * cov + c2) / ((ma[i] * ma[i] + mb[i] * mb[i] + c1) * (va + vb + c2))
            }
            total += sum / Double(ma.count)
        }
        return total / Double(channels)
    }
}
