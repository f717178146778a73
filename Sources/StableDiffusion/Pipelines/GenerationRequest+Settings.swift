extension GenerationRequest {
    /// The pipeline settings of this request at `width` × `height` (the size actually rendered) for `batch` images
    /// from seed `seed` (default: the request's); throws for an unknown sampler.
    public func settings(width: Int, height: Int, seed: UInt64? = nil, batch: Int = 1) throws -> Pipeline.Settings {
        var settings = Pipeline.Settings()
        settings.width = width
        settings.height = height
        settings.steps = steps
        settings.guidance = Float(cfgScale)
        settings.sampler = try samplerName
        settings.seed = seed ?? self.seed
        settings.batch = batch
        settings.noise = rng
        settings.subseed = subseed ?? 0
        settings.subseedStrength = Float(effectiveSubseedStrength)
        settings.seedResizeFrom = seedResizeFrom
        settings.tokenMergingRatio = tokenMergingRatio ?? 0
        settings.deepCacheInterval = deepCacheInterval ?? 1
        settings.deepCacheBranch = deepCacheBranch ?? 0
        return settings
    }
}
