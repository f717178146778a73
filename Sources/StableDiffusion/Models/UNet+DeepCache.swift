import Tensors

/// DeepCache (Ma, Fang & Wang 2023) as the `DeepCache` package's `DeepCacheSDHelper` applies it: the deep
/// features of the UNet change slowly from step to step, so every `interval`-th step computes the whole UNet and
/// keeps what each module returned, and the steps between run only the modules above the cache branch (conv_in,
/// the shallow down layers and the last up layers), taking everything deeper from the last full step.
///
/// `branch` is the helper's `cache_branch_id`: block `branch / 3`, layer `branch % 3`, counted from the top of the
/// UNet; on a cached step a module is reused when `is_skip_step` says so (down modules at or after that layer,
/// the middle block, up modules after it, whole blocks deeper than it). Interval 1 is the full computation.
final class FeatureCache {
    /// Where a module sits in DeepCache's numbering (up blocks are counted from the top, as the down blocks).
    enum Place {
        case down(block: Int, layer: Int)
        case middle
        case up(block: Int, layer: Int)
    }

    /// Steps between full computations.
    let interval: Int
    /// The cache branch's block and layer.
    let block: Int, layer: Int
    /// Whether the current UNet call is a cached step (reuses) or a full one (computes and keeps).
    var reusing = false
    private var kept: [String: [Tensor]] = [:]

    /// A cache for `interval` and branch `branch` (`DeepCacheSDHelper.set_params`).
    init(interval: Int, branch: Int) {
        self.interval = interval
        (block, layer) = (branch / 3, branch % 3)
    }

    /// Marks step `step` (counted from the first step this render samples) as full or cached.
    func begin(step: Int) { reusing = step % interval != 0 }

    /// DeepCache's `is_skip_step` on a cached step: whether the module at `place` is reused.
    func reuses(_ place: Place) -> Bool {
        switch place {
        case .middle: return true
        case .down(let b, let l): return b > block || (b == block && l >= layer)
        case .up(let b, let l): return b > block || (b == block && l > layer)
        }
    }

    /// The module `key`'s outputs: kept ones on a cached step where DeepCache reuses it, else `compute()`'s, kept
    /// when a cached step will want them. Keys carry the batch size, so a call of another batch (an `AND` prompt's
    /// composition) computes rather than reusing features of the wrong shape.
    func outputs(_ key: String, _ place: Place, batch: Int, _ compute: () -> [Tensor]) -> [Tensor] {
        let reused = reuses(place)
        let slot = "\(key)@\(batch)"
        if reusing && reused, let outputs = kept[slot] { return outputs }
        let outputs = compute()
        if reused { kept[slot] = outputs }
        return outputs
    }
}

extension FeatureCache? {
    /// `compute()`, or through the cache when there is one (`FeatureCache.outputs`).
    func outputs(_ key: String, _ place: FeatureCache.Place, batch: Int, _ compute: () -> [Tensor]) -> [Tensor] {
        guard let cache = self else { return compute() }
        return cache.outputs(key, place, batch: batch, compute)
    }

    /// `compute()`, or through the cache when there is one (`FeatureCache.outputs`).
    func run(_ key: String, _ place: FeatureCache.Place, batch: Int, _ compute: () -> Tensor) -> Tensor {
        guard let cache = self else { return compute() }
        return cache.outputs(key, place, batch: batch) { [compute()] }[0]
    }
}

/// The lossy shortcuts one UNet call may take; the default takes none (the full computation).
struct UNetShortcuts {
    /// DeepCache's features, shared by the calls of one render; nil: none.
    var cache: FeatureCache?
    /// Token merging's ratio in the full-resolution transformers (`TokenMerge`); 0: none.
    var mergeRatio: Double = 0
    /// Latent cells of the sample, which tells the full-resolution transformers from the others.
    var latentTokens = 0

    /// The merge ratio of a transformer over `h` [N, C, H, W].
    func mergeRatio(for h: Tensor) -> Double {
        mergeRatio > 0 && TokenMerge.applies(tokens: h.shape[2] * h.shape[3], latentTokens: latentTokens) ? mergeRatio : 0
    }
}
