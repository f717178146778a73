/// Assembling an image from overlapping tiles (the VAE's tiled decode and encode): blending a tile's edge from its
/// neighbour and pasting a tile's corner into the whole, on [N, C, H, W] tensors.
extension Tensor {
    /// Ramps the first `extent` rows (`vertical`) or columns of this tile from the last ones of `neighbour` (the tile
    /// above or to the left): row `step` becomes neighbour·(1 − step/span) + self·step/span.
    public mutating func blendEdge(from neighbour: Tensor, extent: Int, vertical: Bool) {
        let (planes, height, width) = (shape[0] * shape[1], shape[2], shape[3])
        let (otherHeight, otherWidth) = (neighbour.shape[2], neighbour.shape[3])
        let span = Swift.min(extent, vertical ? Swift.min(height, otherHeight) : Swift.min(width, otherWidth))
        guard span > 0 else { return }
        let target = mutablePointer()
        withExtendedLifetime(neighbour) {
            let source = neighbour.pointer
            for plane in 0..<planes {
                for step in 0..<span {
                    let weight = Float(step) / Float(span)
                    if vertical {
                        let to = target + (plane * height + step) * width
                        let from = source + (plane * otherHeight + otherHeight - span + step) * otherWidth
                        for x in 0..<Swift.min(width, otherWidth) { to[x] = from[x] * (1 - weight) + to[x] * weight }
                    } else {
                        for y in 0..<Swift.min(height, otherHeight) {
                            let to = target + (plane * height + y) * width + step
                            let from = source + (plane * otherHeight + y) * otherWidth + otherWidth - span + step
                            to.pointee = from.pointee * (1 - weight) + to.pointee * weight
                        }
                    }
                }
            }
        }
    }

    /// Copies the top-left `rows × columns` of `tile` (clipped to this image) into this image at (top, left).
    public mutating func paste(_ tile: Tensor, top: Int, left: Int, rows: Int, columns: Int) {
        let (planes, tileHeight, tileWidth) = (tile.shape[0] * tile.shape[1], tile.shape[2], tile.shape[3])
        let (height, width) = (shape[2], shape[3])
        let copyRows = Swift.min(rows, tileHeight, height - top)
        let copyColumns = Swift.min(columns, tileWidth, width - left)
        guard copyRows > 0 && copyColumns > 0 else { return }
        let target = mutablePointer()
        withExtendedLifetime(tile) {
            for plane in 0..<planes {
                for y in 0..<copyRows {
                    (target + (plane * height + top + y) * width + left)
                        .update(from: tile.pointer + (plane * tileHeight + y) * tileWidth, count: copyColumns)
                }
            }
        }
    }
}
