/// How an image is fitted to another size, as the web UI's `images.resize_image` does for img2img (its resize modes
/// 0–2; mode 3 resizes latents and is the engine's).
public enum ImageFit: Sendable {
    /// Stretch to the size (mode 0).
    case stretch
    /// Scale to cover the size keeping the aspect, crop the overflow centred (mode 1).
    case crop
    /// Scale to fit inside keeping the aspect, centred, and fill the bands by stretching the edge rows or columns (mode 2).
    case fill
}

extension PNGImage {
    /// This image fitted to `width` × `height` as the web UI's `resize_image(mode, im, width, height)` does with no
    /// upscaler: LANCZOS for the resize, a black canvas, Python's integer arithmetic for the geometry, and for `fill`
    /// the bands made by resizing the empty box at the image's edge (Pillow's default BICUBIC, as the web UI calls it).
    public func fitted(width: Int, height: Int, fit: ImageFit) throws -> PNGImage {
        if fit == .stretch || (self.width == width && self.height == height) {
            return try resampled(width: width, height: height, filter: .lanczos)
        }
        let ratio = Double(width) / Double(height)
        let sourceRatio = Double(self.width) / Double(self.height)
        let covers = fit == .crop ? ratio > sourceRatio : ratio < sourceRatio
        let fitsHeight = fit == .crop ? ratio <= sourceRatio : ratio >= sourceRatio
        let scaledWidth = covers ? width : self.width * height / self.height
        let scaledHeight = fitsHeight ? height : self.height * width / self.width
        let resized = try resampled(width: scaledWidth, height: scaledHeight, filter: .lanczos)
        var canvas = try PNGImage(
            width: width, height: height, format: format, pixels: [UInt8](repeating: 0, count: width * height * format.channels))
        canvas.paste(
            resized, x: Self.floorDivide(width, 2) - Self.floorDivide(scaledWidth, 2),
            y: Self.floorDivide(height, 2) - Self.floorDivide(scaledHeight, 2))
        guard fit == .fill else { return canvas }
        if ratio < sourceRatio {
            let band = height / 2 - scaledHeight / 2
            if band > 0 {
                let edge = Double(resized.height)
                canvas.paste(try resized.resampled(width: width, height: band, filter: .bicubic, box: (0, 0, Double(width), 0)), x: 0, y: 0)
                canvas.paste(
                    try resized.resampled(width: width, height: band, filter: .bicubic, box: (0, edge, Double(width), edge)), x: 0,
                    y: band + scaledHeight)
            }
        } else if ratio > sourceRatio {
            let band = width / 2 - scaledWidth / 2
            if band > 0 {
                let edge = Double(resized.width)
                canvas.paste(try resized.resampled(width: band, height: height, filter: .bicubic, box: (0, 0, 0, Double(height))), x: 0, y: 0)
                canvas.paste(
                    try resized.resampled(width: band, height: height, filter: .bicubic, box: (edge, 0, edge, Double(height))), x: band + scaledWidth,
                    y: 0)
            }
        }
        return canvas
    }

    /// Python's `//` for a positive divisor.
    static func floorDivide(_ value: Int, _ divisor: Int) -> Int { value >= 0 ? value / divisor : -((-value + divisor - 1) / divisor) }

    /// Copies `image` (same format) with its top-left corner at (`x`, `y`), clipped to this image, as Pillow's `paste`.
    mutating func paste(_ image: PNGImage, x: Int, y: Int) {
        let channels = format.channels
        let (top, left) = (max(0, -y), max(0, -x))
        for row in top..<max(top, min(image.height, height - y)) {
            for column in left..<max(left, min(image.width, width - x)) {
                for c in 0..<channels {
                    pixels[((row + y) * width + column + x) * channels + c] = image.pixels[(row * image.width + column) * channels + c]
                }
            }
        }
    }
}
