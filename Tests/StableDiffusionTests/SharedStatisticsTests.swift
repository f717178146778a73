import StableDiffusion
import Testing

/// Tiles' owned ranges partition the axis (every position in exactly one tile) and stay
/// inside their tiles, for lengths that leave short last tiles.
@Test(arguments: [(64, 16, 12), (40, 16, 12), (17, 16, 12), (100, 32, 24), (30, 8, 6), (33, 8, 4)])
func ownedRangesPartitionTheAxis(length: Int, tile: Int, stride: Int) {
    var owner = [Int](repeating: 0, count: length)
    for start in Swift.stride(from: 0, to: length, by: stride) {
        let range = TileStatistics.ownedRange(start: start, stride: stride, tile: tile, length: length)
        #expect(
            range.lowerBound >= 0 && start + range.upperBound <= min(start + tile, length),
            "tile at \(start) owns \(range), outside itself")
        for position in range { owner[start + position] += 1 }
    }
    #expect(owner.allSatisfy { $0 == 1 }, "length \(length), tile \(tile), stride \(stride): owners \(owner)")
}
