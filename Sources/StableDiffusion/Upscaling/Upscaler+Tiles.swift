import Tensors

/// Tiled inference: large images upscaled a tile at a time, so that the network's activations (tens of feature
/// maps at the tile's size, and for RRDBNet at 4× it) are bounded by the tile, not the image. Tiles overlap so that
/// every output pixel away from the image's border is computed with context on all sides, and the overlaps are
/// blended with linear ramps, which hides the seams.
extension Upscaler {
    /// The default tile side in input pixels: an RRDBNet ×4 tile of 256² holds about 1.5 GB of activations.
    public static let defaultTile = 256
    /// The default overlap between neighbouring tiles, in input pixels.
    public static let defaultOverlap = 32

    /// The image [N, C, H, W] in [0, 1] upscaled tile by tile: tiles of `tile` × `tile` input pixels, neighbours
    /// overlapping by at least `overlap`, the last tile of a row or column flush with the image's edge. An image
    /// no larger than one tile is upscaled at once.
    public func upscaleTiled(_ image: Tensor, tile: Int = defaultTile, overlap: Int = defaultOverlap) -> Tensor {
        precondition(image.rank == 4 && image.shape[1] == channels, "the upscaler takes [N, \(channels), H, W], got \(image.shape)")
        let (height, width) = (image.shape[2], image.shape[3])
        // Tiles and their steps on the pixel-unshuffle grid, so that a tile sees whole unshuffled cells.
        let side = Swift.max(multiple, tile / multiple * multiple)
        guard height > side || width > side else { return upscale(image) }
        let margin = Swift.min(Swift.max(0, overlap) / multiple * multiple, side / 2 / multiple * multiple)
        let rows = Upscaler.tileStarts(length: height, tile: side, step: side - margin, multiple: multiple)
        let columns = Upscaler.tileStarts(length: width, tile: side, step: side - margin, multiple: multiple)
        let s = scale
        var output = Tensor(zeros: [image.shape[0], image.shape[1], height * s, width * s])
        var weights = Tensor(zeros: [height * s, width * s])
        for (row, top) in rows.enumerated() {
            let bottom = row + 1 == rows.count ? height : top + side
            for (column, left) in columns.enumerated() {
                let right = column + 1 == columns.count ? width : left + side
                let piece = image.slice(axis: 2, range: top..<bottom).slice(axis: 3, range: left..<right)
                let upscaled = upscale(piece)
                // The overlap with each neighbour, in output pixels.
                let feather = Tensor.Feather(
                    top: row > 0 ? (rows[row - 1] + side - top) * s : 0,
                    bottom: row + 1 < rows.count ? (bottom - rows[row + 1]) * s : 0,
                    left: column > 0 ? (columns[column - 1] + side - left) * s : 0,
                    right: column + 1 < columns.count ? (right - columns[column + 1]) * s : 0)
                output.addFeathered(upscaled, top: top * s, left: left * s, feather: feather, weights: &weights)
            }
        }
        output.divide(byWeights: weights)
        return output
    }

    /// The image upscaled by `factor`, which need not be the model's scale: the model runs (tiled) as many times as
    /// it takes to reach at least `factor` (once at least), then the result is shrunk by area averaging to exactly the rounded
    /// `factor` × the input's size, as the web UIs do with their resize after the upscaler.
    public func upscale(_ image: Tensor, by factor: Double, tile: Int = defaultTile, overlap: Int = defaultOverlap) -> Tensor {
        precondition(factor > 0, "the upscale factor must be positive, got \(factor)")
        let (height, width) = (image.shape[2], image.shape[3])
        let target = (height: Swift.max(1, Int((Double(height) * factor).rounded())), width: Swift.max(1, Int((Double(width) * factor).rounded())))
        // At least one pass, so that a 1× (restoration) model still runs.
        var result = image
        repeat {
            result = upscaleTiled(result, tile: tile, overlap: overlap)
        } while scale > 1 && (result.shape[2] < target.height || result.shape[3] < target.width)
        if result.shape[2] == target.height && result.shape[3] == target.width { return result }
        return result.resizedByArea(height: Swift.min(target.height, result.shape[2]), width: Swift.min(target.width, result.shape[3]))
    }

    /// Where tiles of `tile` pixels start along a side of `length`: every `step`, then a last one reaching the end
    /// (its start moved down onto the `multiple` grid, so it may be up to `multiple` − 1 pixels longer); one tile
    /// from 0 when the side fits in it.
    static func tileStarts(length: Int, tile: Int, step: Int, multiple: Int) -> [Int] {
        guard length > tile else { return [0] }
        var starts: [Int] = []
        var start = 0
        while start + tile < length {
            starts.append(start)
            start += Swift.max(step, multiple)
        }
        let last = (length - tile) / multiple * multiple
        if last > (starts.last ?? -1) { starts.append(last) }
        return starts
    }
}

extension Upscaler {
    /// An 8-bit RGB image (interleaved, rows top to bottom) upscaled by `factor` (`upscale(_:by:)`) and quantised back to
    /// 8 bits as diffusers' `numpy_to_pil` does: what `farm upscale` writes and a task's `upscaler` step sends.
    public func upscale(
        rgb: [UInt8], width: Int, height: Int, by factor: Double, tile: Int = defaultTile, overlap: Int = defaultOverlap
    ) -> (rgb: [UInt8], width: Int, height: Int) {
        // PNG bytes → [0, 1], the range upscalers take, and back.
        let pixels = Pipeline.pixels(rgb: rgb, width: width, height: height).map { ($0 + 1) / 2 }
        let upscaled = upscale(pixels, by: factor, tile: tile, overlap: overlap)
        return (Pipeline.bytes(upscaled.map { $0 * 2 - 1 })[0], upscaled.shape[3], upscaled.shape[2])
    }
}
