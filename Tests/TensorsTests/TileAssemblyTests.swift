import Tensors
import Testing

/// A [n, c, h, w] tensor whose values are 1, 2, 3, … scaled by `scale`.
private func ramp(_ shape: [Int], scale: Float = 1) -> Tensor {
    Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { Float($0 + 1) * scale })
}

/// Blending a tile's edge from its neighbour ramps linearly over the span, for every small shape, in both directions.
@Test func blendEdgeRampsFromTheNeighbour() {
    for (height, width, extent) in [(3, 4, 2), (4, 3, 3), (2, 2, 5), (5, 1, 1)] {
        for vertical in [true, false] {
            let neighbour = ramp([1, 2, height, width], scale: 100)
            let original = ramp([1, 2, height, width])
            var tile = original
            tile.blendEdge(from: neighbour, extent: extent, vertical: vertical)
            let span = min(extent, vertical ? height : width)
            for plane in 0..<2 {
                for y in 0..<height {
                    for x in 0..<width {
                        let step = vertical ? y : x
                        let index = (plane * height + y) * width + x
                        var expected = original.scalars[index]
                        if step < span {
                            let weight = Float(step) / Float(span)
                            let from = vertical ? (plane * height + height - span + y) * width + x : (plane * height + y) * width + width - span + x
                            expected = neighbour.scalars[from] * (1 - weight) + original.scalars[index] * weight
                        }
                        #expect(tile.scalars[index] == expected, "\(height)x\(width) extent \(extent) vertical \(vertical) at \(plane),\(y),\(x)")
                    }
                }
            }
        }
    }
}

/// Pasting copies the tile's top-left corner, clipped to the image, and leaves the rest untouched.
@Test func pasteCopiesTheClippedCorner() {
    var image = Tensor(zeros: [1, 2, 5, 6])
    let tile = ramp([1, 2, 4, 4])
    image.paste(tile, top: 3, left: 4, rows: 3, columns: 3)
    for plane in 0..<2 {
        for y in 0..<5 {
            for x in 0..<6 {
                let inside = y >= 3 && x >= 4
                let expected = inside ? tile.scalars[(plane * 4 + y - 3) * 4 + x - 4] : 0
                #expect(image.scalars[(plane * 5 + y) * 6 + x] == expected, "\(plane),\(y),\(x)")
            }
        }
    }
}
