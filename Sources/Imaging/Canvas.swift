import Foundation

/// Pixel operations the pipelines need around the engine: canvas extension for
/// outpainting, mask blur, and compositing a generated image over the original.
extension PNGImage {
    /// The image as interleaved RGB (gray is replicated, alpha dropped).
    public func rgb() -> PNGImage {
        guard format != .rgb else { return self }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let channels = format.channels
        for p in 0..<(width * height) {
            for c in 0..<3 {
                out[p * 3 + c] = pixels[p * channels + (channels >= 3 ? c : 0)]
            }
        }
        // Sizes are unchanged and valid, so this cannot throw.
        return (try? PNGImage(width: width, height: height, format: .rgb, pixels: out, text: text)) ?? self
    }

    /// A one-channel mask: gray as is, colour by luminance, alpha ignored.
    public func mask() -> PNGImage {
        guard format != .gray else { return self }
        let channels = format.channels
        var out = [UInt8](repeating: 0, count: width * height)
        for p in 0..<(width * height) {
            if channels >= 3 {
                let r = Int(pixels[p * channels])
                let g = Int(pixels[p * channels + 1])
                let b = Int(pixels[p * channels + 2])
                out[p] = UInt8((r * 299 + g * 587 + b * 114 + 500) / 1000)
            } else {
                out[p] = pixels[p * channels]
            }
        }
        return (try? PNGImage(width: width, height: height, format: .gray, pixels: out)) ?? self
    }

    /// The image on a larger canvas (RGB), new pixels copied from the nearest edge, and
    /// the mask of the new area (255) for inpainting it.
    public func extended(left: Int, right: Int, top: Int, bottom: Int) throws -> (image: PNGImage, mask: PNGImage) {
        guard min(left, right, top, bottom) >= 0 else { throw ImagingError.invalidImage("outpaint extents must not be negative") }
        let source = rgb()
        let newWidth = width + left + right
        let newHeight = height + top + bottom
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        var mask = [UInt8](repeating: 0, count: newWidth * newHeight)
        for y in 0..<newHeight {
            let sy = min(max(y - top, 0), height - 1)
            for x in 0..<newWidth {
                let sx = min(max(x - left, 0), width - 1)
                let inside = y >= top && y < top + height && x >= left && x < left + width
                mask[y * newWidth + x] = inside ? 0 : 255
                for c in 0..<3 { out[(y * newWidth + x) * 3 + c] = source.pixels[(sy * width + sx) * 3 + c] }
            }
        }
        return (
            try PNGImage(width: newWidth, height: newHeight, format: .rgb, pixels: out),
            try PNGImage(width: newWidth, height: newHeight, format: .gray, pixels: mask)
        )
    }

    /// A gray mask grown by `pixels` into the area it does not cover (so that the
    /// repainted region overlaps the original by that much).
    public func dilated(by pixels: Int) -> PNGImage {
        guard pixels > 0, format == .gray else { return self }
        var out = self.pixels
        for y in 0..<height {
            for x in 0..<width where self.pixels[y * width + x] < 255 {
                var grown = false
                for dy in -pixels...pixels where !grown {
                    let ny = y + dy
                    guard ny >= 0 && ny < height else { continue }
                    for dx in -pixels...pixels where self.pixels[ny * width + min(max(x + dx, 0), width - 1)] == 255 {
                        grown = true
                        break
                    }
                }
                if grown { out[y * width + x] = 255 }
            }
        }
        return (try? PNGImage(width: width, height: height, format: .gray, pixels: out)) ?? self
    }

    /// A gray mask blurred with a Gaussian of standard deviation `sigma` pixels (the web UIs' "mask blur").
    public func blurred(sigma: Double) -> PNGImage {
        guard sigma > 0, format == .gray else { return self }
        let radius = Int((sigma * 3).rounded(.up))
        var kernel = (-radius...radius).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        var horizontal = [Double](repeating: 0, count: width * height)
        for y in 0..<height {
            for x in 0..<width {
                var sum = 0.0
                for (k, weight) in kernel.enumerated() {
                    sum += weight * Double(pixels[y * width + min(max(x + k - radius, 0), width - 1)])
                }
                horizontal[y * width + x] = sum
            }
        }
        var out = [UInt8](repeating: 0, count: width * height)
        for y in 0..<height {
            for x in 0..<width {
                var sum = 0.0
                for (k, weight) in kernel.enumerated() {
                    sum += weight * horizontal[min(max(y + k - radius, 0), height - 1) * width + x]
                }
                out[y * width + x] = UInt8(min(max(sum.rounded(), 0), 255))
            }
        }
        return (try? PNGImage(width: width, height: height, format: .gray, pixels: out)) ?? self
    }

    /// `generated` where `mask` is 255, this image where it is 0, blended linearly in between
    /// (both RGB of one size; the mask gray).
    public func composited(under generated: PNGImage, mask: PNGImage) throws -> PNGImage {
        let base = rgb()
        let top = generated.rgb()
        guard base.width == top.width, base.height == top.height, mask.width == width, mask.height == height, mask.format == .gray else {
            throw ImagingError.invalidImage("composite needs images and a gray mask of one size")
        }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for p in 0..<(width * height) {
            let w = Int(mask.pixels[p])
            for c in 0..<3 {
                out[p * 3 + c] = UInt8((Int(base.pixels[p * 3 + c]) * (255 - w) + Int(top.pixels[p * 3 + c]) * w + 127) / 255)
            }
        }
        return try PNGImage(width: width, height: height, format: .rgb, pixels: out, text: generated.text)
    }
}
