import Foundation

/// Pillow's resampling (`Image.resize(size, resample, box)`, libImaging/Resample.c) reproduced to the byte: separable
/// convolution with the filter widened by the downscale factor, coefficients normalised then rounded to 22-bit fixed
/// point, a horizontal pass over the rows the vertical pass needs, then the vertical pass, each rounded and clipped to
/// 8 bits (the vertical pass first when the height shrinks by more than twice the width, as Pillow 12 and later do).
/// The web UI resizes init images this way (LANCZOS), so the same file gives the same canvas.
public enum ResampleFilter: Sendable {
    /// Pillow's `LANCZOS` (a = 3).
    case lanczos
    /// Pillow's `BICUBIC` (a = −0.5), its default for `resize` on RGB and L images.
    case bicubic

    /// Half the filter's width at scale 1.
    var support: Double {
        switch self {
        case .lanczos: return 3
        case .bicubic: return 2
        }
    }

    /// The filter's weight at distance `x`.
    func weight(_ x: Double) -> Double {
        switch self {
        case .lanczos:
            func sinc(_ value: Double) -> Double {
                if value == 0 { return 1 }
                let scaled = value * Double.pi
                return sin(scaled) / scaled
            }
            return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0
        case .bicubic:
            let a = -0.5
            let distance = Swift.abs(x)
            if distance < 1 { return ((a + 2) * distance - (a + 3)) * distance * distance + 1 }
            if distance < 2 { return (((distance - 5) * distance + 8) * distance - 4) * a }
            return 0
        }
    }
}

extension PNGImage {
    /// This image resized to `width` × `height` from the region `box` (left, top, right, bottom in source pixels,
    /// fractional or empty allowed; nil: the whole image), exactly as Pillow's `resize` does for 8-bit images.
    public func resampled(width: Int, height: Int, filter: ResampleFilter, box: (Double, Double, Double, Double)? = nil) throws -> PNGImage {
        let region = box ?? (0, 0, Double(self.width), Double(self.height))
        if width == self.width && height == self.height && box == nil {
            return try PNGImage(width: width, height: height, format: format, pixels: pixels)
        }
        let channels = format.channels
        let needHorizontal = width != self.width || region.0 != 0 || region.2 != Double(width)
        let needVertical = height != self.height || region.1 != 0 || region.3 != Double(height)
        let columns = Self.coefficients(input: self.width, from: region.0, to: region.2, output: width, filter: filter)
        let rows = Self.coefficients(input: self.height, from: region.1, to: region.3, output: height, filter: filter)
        // Pillow 12+ runs the vertical pass first when the height shrinks by more than twice what the width does.
        let horizontalFirst = !(self.height - height > 0 && self.height - height > (self.width - width) * 2)
        var (current, currentWidth, currentHeight) = (pixels, self.width, self.height)
        if needHorizontal && horizontalFirst {
            // Only the source rows the vertical pass reads are resampled horizontally.
            let first = rows.first!.start
            let last = rows.last!.start + rows.last!.weights.count
            current = Self.horizontalPass(current, width: currentWidth, rows: first..<last, columns: columns, channels: channels)
            (currentWidth, currentHeight) = (width, last - first)
            if needVertical {
                current = Self.verticalPass(
                    current, width: currentWidth, rows: rows.map { ($0.start - first, $0.weights) }, channels: channels)
                currentHeight = height
            }
        } else {
            if needVertical {
                current = Self.verticalPass(current, width: currentWidth, rows: rows, channels: channels)
                currentHeight = height
            }
            if needHorizontal {
                current = Self.horizontalPass(current, width: currentWidth, rows: 0..<currentHeight, columns: columns, channels: channels)
                currentWidth = width
            }
        }
        return try PNGImage(width: currentWidth, height: currentHeight, format: format, pixels: current)
    }

    /// Pillow's horizontal pass over source `rows` of an image `width` wide: each output column's taps.
    static func horizontalPass(
        _ source: [UInt8], width: Int, rows: Range<Int>, columns: [(start: Int, weights: [Int32])], channels: Int
    ) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: columns.count * rows.count * channels)
        for y in rows {
            for (x, (start, weights)) in columns.enumerated() {
                for c in 0..<channels {
                    var sum = Int32(1 << (precision - 1))
                    for (k, weight) in weights.enumerated() { sum &+= Int32(source[(y * width + start + k) * channels + c]) &* weight }
                    output[((y - rows.lowerBound) * columns.count + x) * channels + c] = clip(sum)
                }
            }
        }
        return output
    }

    /// Pillow's vertical pass over an image `width` wide: each output row's taps.
    static func verticalPass(_ source: [UInt8], width: Int, rows: [(start: Int, weights: [Int32])], channels: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: width * rows.count * channels)
        for (y, (start, weights)) in rows.enumerated() {
            for x in 0..<width {
                for c in 0..<channels {
                    var sum = Int32(1 << (precision - 1))
                    for (k, weight) in weights.enumerated() { sum &+= Int32(source[((start + k) * width + x) * channels + c]) &* weight }
                    output[(y * width + x) * channels + c] = clip(sum)
                }
            }
        }
        return output
    }

    /// Pillow's fixed-point precision for 8-bit images (32 − 8 − 2 bits).
    static let precision = 22

    /// A fixed-point sum back to 8 bits, clipped.
    static func clip(_ sum: Int32) -> UInt8 { UInt8(clamping: sum >> Int32(precision)) }

    /// Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc`: for each output index the first source index and the
    /// fixed-point weights of the source indices from there.
    static func coefficients(input: Int, from low: Double, to high: Double, output: Int, filter: ResampleFilter) -> [(start: Int, weights: [Int32])] {
        // Pillow holds the box in float32.
        let (low, high) = (Double(Float(low)), Double(Float(high)))
        let scale = (high - low) / Double(output)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let inverse = 1 / filterScale
        return (0..<output).map { index in
            let center = low + (Double(index) + 0.5) * scale
            let first = max(Int(center - support + 0.5), 0)
            let count = min(Int(center + support + 0.5), input) - first
            var weights = (0..<max(count, 0)).map { k in filter.weight((Double(k + first) - center + 0.5) * inverse) }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            let scaled = weights.map { weight in
                Int32(weight < 0 ? -0.5 + weight * Double(1 << precision) : 0.5 + weight * Double(1 << precision))
            }
            return (first, scaled)
        }
    }
}
