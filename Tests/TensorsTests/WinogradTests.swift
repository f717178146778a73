import CKernels
import Tensors
import Testing

/// The shapes of `winogradConvolutionMatchesDirect`: tile rows of 11 tiles (eight-tile groups straddle rows: the
/// lane-by-lane transforms), of 16 (every group inside a row: the vector transforms, cut at the left and right by the
/// padding), of 25 with a partial last tile (both kinds, and a vector group cut by the right edge), of 9 in a short
/// image (one vector group per row, then stragglers).
let winogradShapes: [(batch: Int, channels: Int, outChannels: Int, height: Int, width: Int)] = [
    (2, 19, 21, 37, 41), (1, 19, 21, 37, 64), (2, 17, 16, 30, 98), (2, 16, 16, 33, 35),
]

/// Winograd F(4×4, 3×3) against a double-precision direct convolution, on every instruction-set
/// path, with sizes that leave partial tiles at the right and bottom edges, batches of one and
/// two, channel counts that are not multiples of eight, and enough tiles that conv2d
/// takes the Winograd path. Bound: 2.5e-6 of the sum of |w·x| over each output's 3×3×C window
/// (the error F(4,3)'s transforms add is of that order; a wrong tap or tile is off by ~1). The 37×64 shape's worst
/// output is 2.09e-6 with FMA, with the same bits whether its tiles move lane by lane or eight at a time (checked by
/// turning the vector moves off), so that is F(4,3)'s own rounding, not the transforms' bookkeeping.
@Test(.serialized, arguments: [Int32(0), 1, 2], 0..<winogradShapes.count)
func winogradConvolutionMatchesDirect(level: Int32, shape: Int) {
    let previous = Tensor.limitInstructionSet(level)
    defer { Tensor.limitInstructionSet(previous) }
    let (batch, channels, outChannels, height, width) = winogradShapes[shape]
    let x = Tensor(shape: [batch, channels, height, width], values: lcgValues(batch * channels * height * width, seed: 5))
    let w = Tensor(shape: [outChannels, channels, 3, 3], values: lcgValues(outChannels * channels * 9, seed: 6))
    let b = Tensor(shape: [outChannels], values: lcgValues(outChannels, seed: 7))
    let winograd = x.conv2d(weight: w, bias: b, padding: 1)
    #expect(winograd.shape == [batch, outChannels, height, width])
    let worst = worstRelativeError(winograd, x: x, w: w, b: b, stride: 1, padding: 1)
    #expect(worst <= 2.5e-6, "Winograd output off by \(worst) of its window's magnitude at level \(level), shape \(winogradShapes[shape])")
}

/// The transforms' vector moves (eight tiles of one tile row at a time) give the same bits as their lane-by-lane
/// path: each tile transformed on its own (a group of one always goes lane by lane) against all tiles in one call,
/// on every instruction set, for a 64-wide image (every group in a row, cut by the padding at both ends) and a 98-wide
/// one (a partial last tile, groups that straddle rows).
@Test(.serialized, arguments: [Int32(0), 1, 2], [(37, 64), (30, 98)])
func winogradVectorMovesMatchLaneByLane(level: Int32, size: (height: Int, width: Int)) {
    let previous = Tensor.limitInstructionSet(level)
    defer { Tensor.limitInstructionSet(previous) }
    let (channels, height, width) = (3, size.height, size.width)
    let tiles = ((height + 3) / 4) * ((width + 3) / 4)
    let ldv = (tiles + 7) / 8 * 8
    let x = lcgValues(channels * height * width, seed: 31)
    var whole = [Float](repeating: .nan, count: 36 * channels * ldv)
    ck_winograd_input(x, channels, height, width, 0, tiles, ldv, 0, channels, &whole)
    var single = [Float](repeating: .nan, count: 36 * channels * 8)
    var inputsDiffer = 0
    for t in 0..<tiles {
        ck_winograd_input(x, channels, height, width, t, 1, 8, 0, channels, &single)
        for point in 0..<36 * channels where single[point * 8].bitPattern != whole[point * ldv + t].bitPattern { inputsDiffer += 1 }
    }
    #expect(inputsDiffer == 0, "\(inputsDiffer) transformed inputs differ at level \(level), \(height)×\(width)")

    let m = lcgValues(36 * channels * ldv, seed: 32)
    let bias = lcgValues(channels, seed: 33)
    var y = [Float](repeating: .nan, count: channels * height * width)
    ck_winograd_output(m, channels, 0, channels, height, width, 0, tiles, ldv, bias, 0, channels, &y)
    var yByTile = [Float](repeating: .nan, count: channels * height * width)
    var one = [Float](repeating: 0, count: 36 * channels * 8)
    for t in 0..<tiles {
        for point in 0..<36 * channels { one[point * 8] = m[point * ldv + t] }
        ck_winograd_output(one, channels, 0, channels, height, width, t, 1, 8, bias, 0, channels, &yByTile)
    }
    let outputsDiffer = zip(y, yByTile).filter { $0.bitPattern != $1.bitPattern }.count
    #expect(outputsDiffer == 0, "\(outputsDiffer) outputs differ at level \(level), \(height)×\(width)")
}
