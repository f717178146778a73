import Tensors

/// How a tiled VAE decode normalises its tiles.
public enum TileStatistics: Sendable {
    /// Each tile's group norms use that tile's own statistics, as diffusers' `enable_tiling`
    /// does: one decode's work, but tiles come out in slightly different tones.
    case perTile
    /// Every tile uses the whole image's statistics, learnt one group norm at a time from
    /// all tiles (a pass per norm, each stopping just after it), so tiles match the untiled
    /// decode up to their cut edges. Memory stays one tile's; time grows several-fold.
    case shared

    /// The part of the tile starting at `start` (tiles start every `stride` inputs along an
    /// axis of `length`, each `tile` long) that it owns, relative to the tile: from half the
    /// overlap past its start to half the overlap past the next tile's start, so that every
    /// position belongs to exactly one tile and lies away from the cut edges where tiles differ
    /// from the whole image.
    public static func ownedRange(start: Int, stride: Int, tile: Int, length: Int) -> Range<Int> {
        let half = (tile - stride) / 2
        let from = start == 0 ? 0 : Swift.min(start + half, length)
        let to = start + stride >= length ? length : Swift.min(start + stride + half, length)
        return (from - start)..<(Swift.max(from, to) - start)
    }
}

/// Group-norm statistics shared by the tiles of one tiled VAE decode. A pass over all tiles
/// learns one norm: tiles run the decoder with the norms before it already fixed to whole-image
/// statistics, and record that norm's moments over the part of each tile the tile owns; the
/// combination is that norm's whole-image statistics. Learning a later norm from statistics
/// that are themselves still changing (all norms at once, pass after pass) diverges: each
/// norm's input distribution depends on every norm before it.
final class SharedGroupStatistics: @unchecked Sendable {
    typealias Moments = (count: Double, mean: Double, m2: Double)

    /// The statistics of the tiled decode in progress on this task; nil elsewhere.
    @TaskLocal static var current: SharedGroupStatistics?

    /// The norm (in decode order) this pass learns; nil once all are learnt.
    private(set) var learning: Int? = 0
    private var learnt: [[Moments]] = []
    private var recording: [Moments]?
    private var call = 0
    private var owned = (rows: 0..<0, columns: 0..<0)
    private var tileSize = (height: 1, width: 1)

    /// Starts a tile of `height × width` inputs that owns `rows × columns` of them.
    func beginTile(height: Int, width: Int, rows: Range<Int>, columns: Range<Int>) {
        call = 0
        tileSize = (height, width)
        owned = (rows, columns)
    }

    /// Whether this tile has passed the norm being learnt (the decoder may stop early).
    var tileIsDone: Bool { learning.map { call > $0 } ?? false }

    /// Ends a pass over all tiles: the norm it recorded is learnt, the next one is learnt next.
    func finishPass() {
        guard let recorded = recording else { preconditionFailure("a statistics pass passed no group norm \(learnt.count)") }
        learnt.append(recorded)
        recording = nil
        learning = learnt.count
    }

    /// Ends learning: all tiles now use the learnt statistics.
    func finishLearning() { learning = nil }

    /// Normalises `x` as `norm` does: with whole-image statistics for the norms already
    /// learnt, with the tile's own for the rest, recording the owned part's moments of the
    /// norm being learnt.
    func normalize(_ x: Tensor, _ norm: GroupNorm, silu: Bool) -> Tensor {
        defer { call += 1 }
        if call < learnt.count {
            let units = learnt[call]
            let mean = units.map { Float($0.mean) }
            let inverse = units.map { Float(1 / ($0.m2 / Swift.max($0.count, 1) + Double(norm.epsilon)).squareRoot()) }
            return x.groupNorm(groups: norm.groups, weight: norm.weight, bias: norm.bias, mean: mean, inverseStd: inverse, silu: silu)
        }
        if call == learning {
            // The tile's activations are an integer multiple of its input size (the decoder upsamples).
            let (sy, sx) = (x.shape[2] / tileSize.height, x.shape[3] / tileSize.width)
            let moments = x.groupMoments(
                groups: norm.groups,
                rows: owned.rows.lowerBound * sy..<owned.rows.upperBound * sy,
                columns: owned.columns.lowerBound * sx..<owned.columns.upperBound * sx)
            recording = recording.map { zip($0, moments).map(SharedGroupStatistics.merge) } ?? moments
        }
        return norm.plain(x, silu: silu)
    }

    /// Chan et al.'s combination of two sets' moments.
    static func merge(_ a: Moments, _ b: Moments) -> Moments {
        let count = a.count + b.count
        guard count > 0 else { return a }
        let delta = b.mean - a.mean
        return (count, a.mean + delta * b.count / count, a.m2 + b.m2 + delta * delta * a.count * b.count / count)
    }
}
