/// Assembling an image from overlapping tiles by weighted averaging (the upscalers' tiled inference): each tile is
/// added with weights that ramp up linearly over the edges it shares with a neighbour, and the sum is divided by the
/// summed weights at the end, so that overlaps fade from one tile into the next whatever their widths.
extension Tensor {
    /// Edges of a tile to feather, in pixels of the tile: how far each side overlaps its neighbour (0 at the image's
    /// border).
    public struct Feather: Sendable, Equatable {
        /// Rows shared with the tile above.
        public var top: Int
        /// Rows shared with the tile below.
        public var bottom: Int
        /// Columns shared with the tile to the left.
        public var left: Int
        /// Columns shared with the tile to the right.
        public var right: Int

        /// Makes a feather of these widths.
        public init(top: Int, bottom: Int, left: Int, right: Int) {
            (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
        }

        /// The weight of position `index` of `length` with ramps `low` at the start and `high` at the end: (i + ½)/ramp
        /// inside a ramp, 1 elsewhere; two complementary ramps over the same overlap sum to 1.
        func weight(_ index: Int, length: Int, low: Int, high: Int) -> Float {
            var w: Float = 1
            if index < low { w = Swift.min(w, (Float(index) + 0.5) / Float(low)) }
            let fromEnd = length - 1 - index
            if fromEnd < high { w = Swift.min(w, (Float(fromEnd) + 0.5) / Float(high)) }
            return w
        }
    }

    /// Adds `tile` [N, C, h, w] times its feather weights into this image [N, C, H, W] at (top, left), and the weights
    /// into `weights` [H, W]; the tile must lie inside the image.
    public mutating func addFeathered(_ tile: Tensor, top: Int, left: Int, feather: Feather, weights: inout Tensor) {
        let (planes, tileHeight, tileWidth) = (tile.shape[0] * tile.shape[1], tile.shape[2], tile.shape[3])
        let (height, width) = (shape[2], shape[3])
        precondition(
            tile.rank == 4 && tile.shape[1] == shape[1] && top >= 0 && left >= 0 && top + tileHeight <= height && left + tileWidth <= width
                && weights.shape == [height, width],
            "a \(tile.shape) tile at (\(top), \(left)) does not fit \(shape) with weights \(weights.shape)")
        let rowWeights = (0..<tileHeight).map { feather.weight($0, length: tileHeight, low: feather.top, high: feather.bottom) }
        let columnWeights = (0..<tileWidth).map { feather.weight($0, length: tileWidth, low: feather.left, high: feather.right) }
        let target = mutablePointer()
        let sums = weights.mutablePointer()
        withExtendedLifetime(tile) {
            let source = tile.pointer
            for y in 0..<tileHeight {
                for x in 0..<tileWidth { sums[(top + y) * width + left + x] += rowWeights[y] * columnWeights[x] }
            }
            parallelFor(planes * tileHeight, minimumChunk: 16) { range in
                for line in range {
                    let (plane, y) = line.quotientAndRemainder(dividingBy: tileHeight)
                    let to = target + (plane * height + top + y) * width + left
                    let from = source + line * tileWidth
                    let rowWeight = rowWeights[y]
                    for x in 0..<tileWidth { to[x] += from[x] * rowWeight * columnWeights[x] }
                }
            }
        }
    }

    /// Divides every plane of this image [N, C, H, W] by `weights` [H, W] (the sums `addFeathered` kept).
    public mutating func divide(byWeights weights: Tensor) {
        let (planes, plane) = (shape[0] * shape[1], shape[2] * shape[3])
        precondition(weights.count == plane, "weights \(weights.shape) do not match the image \(shape)")
        let target = mutablePointer()
        withExtendedLifetime(weights) {
            let w = weights.pointer
            parallelFor(planes) { range in
                for index in range {
                    let p = target + index * plane
                    for i in 0..<plane { p[i] /= w[i] }
                }
            }
        }
    }
}
