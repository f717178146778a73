import Foundation
import Tensors

/// `torch.nn.functional.interpolate(x, size=…, mode=…, align_corners=False, antialias=…)` on [N, C, H, W] latents,
/// as the web UI's latent upscalers (hires fix) and resize mode 3 call it: each output index reads a few source
/// indices with weights (its taps), one axis at a time, in float32 as torch computes them.
extension LatentUpscaleMode {
    /// `latents` [N, C, H, W] resized to `height` × `width`.
    public func interpolate(_ latents: Tensor, height: Int, width: Int) -> Tensor {
        let (batch, channels, inHeight, inWidth) = (latents.shape[0], latents.shape[1], latents.shape[2], latents.shape[3])
        let rows = taps(input: inHeight, output: height)
        let columns = taps(input: inWidth, output: width)
        let source = latents.scalars
        var wide = [Float](repeating: 0, count: batch * channels * inHeight * width)
        for plane in 0..<(batch * channels) {
            for y in 0..<inHeight {
                let input = (plane * inHeight + y) * inWidth
                let output = (plane * inHeight + y) * width
                for x in 0..<width {
                    var sum: Float = 0
                    for (index, weight) in columns[x] { sum += weight * source[input + index] }
                    wide[output + x] = sum
                }
            }
        }
        var result = [Float](repeating: 0, count: batch * channels * height * width)
        for plane in 0..<(batch * channels) {
            for y in 0..<height {
                let output = (plane * height + y) * width
                for x in 0..<width {
                    var sum: Float = 0
                    for (index, weight) in rows[y] { sum += weight * wide[(plane * inHeight + index) * width + x] }
                    result[output + x] = sum
                }
            }
        }
        return Tensor(shape: [batch, channels, height, width], values: result)
    }

    /// For each output index along an axis of `input` → `output` cells, the source indices it reads and their weights.
    func taps(input: Int, output: Int) -> [[(index: Int, weight: Float)]] {
        // torch's scale for a given size: input / output, in float (area_pixel_compute_scale without scale_factor).
        let scale = Float(input) / Float(output)
        return (0..<output).map { i in
            switch self {
            case .nearest:
                // torch shortcuts the same size and exact doubling; elsewhere floor(i · scale).
                if input == output { return [(i, 1)] }
                if output == 2 * input { return [(i >> 1, 1)] }
                return [(min(Int((Float(i) * scale).rounded(.down)), input - 1), 1)]
            case .nearestExact:
                return [(min(Int(((Float(i) + 0.5) * scale).rounded(.down)), input - 1), 1)]
            case .bilinear:
                let real = max(scale * (Float(i) + 0.5) - 0.5, 0)
                let first = min(Int(real.rounded(.down)), input - 1)
                let lambda = min(max(real - Float(first), 0), 1)
                let second = first + (first < input - 1 ? 1 : 0)
                return [(first, 1 - lambda), (second, lambda)]
            case .bicubic:
                let real = scale * (Float(i) + 0.5) - 0.5
                let floorIndex = real.rounded(.down)
                let t = real - floorIndex
                let a: Float = -0.75
                func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
                func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
                let weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
                return (0..<4).map { k in (min(max(Int(floorIndex) - 1 + k, 0), input - 1), weights[k]) }
            case .bilinearAntialiased:
                return Self.antialiasedTaps(i, input: input, scale: scale, support: 1) { x in
                    let distance = Swift.abs(x)
                    return distance < 1 ? 1 - distance : 0
                }
            case .bicubicAntialiased:
                return Self.antialiasedTaps(i, input: input, scale: scale, support: 2) { x in
                    let (distance, a): (Float, Float) = (Swift.abs(x), -0.5)
                    if distance < 1 { return ((a + 2) * distance - (a + 3)) * distance * distance + 1 }
                    if distance < 2 { return (((distance - 5) * distance + 8) * distance - 4) * a }
                    return 0
                }
            }
        }
    }

    /// torch's antialiased taps (`_compute_indices_min_size_weights_aa`, PIL's scheme): the filter widened by the
    /// downscale factor, centred on (i + ½) · scale, its weights normalised to sum to 1.
    static func antialiasedTaps(_ i: Int, input: Int, scale: Float, support base: Float, filter: (Float) -> Float)
        -> [(index: Int, weight: Float)]
    {
        let support = scale >= 1 ? base * scale : base
        let inverse: Float = scale >= 1 ? 1 / scale : 1
        let center = scale * (Float(i) + 0.5)
        let low = max(Int(center - support + 0.5), 0)
        let count = min(Int(center + support + 0.5), input) - low
        var taps = (0..<max(count, 0)).map { j in (index: low + j, weight: filter((Float(j + low) - center + 0.5) * inverse)) }
        let total = taps.reduce(0) { $0 + $1.weight }
        if total != 0 { taps = taps.map { ($0.index, $0.weight / total) } }
        return taps
    }
}
