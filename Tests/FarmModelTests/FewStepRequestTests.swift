import Generation
import Testing

/// Token merging and DeepCache are off unless asked, checked with one line naming the flag, and written in the
/// `parameters` text when on.
@Test func fewStepRequestFieldsAreValidatedAndWritten() throws {
    var request = GenerationRequest(prompt: "a fox", model: "sd15")
    #expect(request.tokenMergingRatio == nil && request.deepCacheInterval == nil && request.deepCacheBranch == nil)
    #expect(!request.parametersText(width: 64, height: 64).contains("Token merging"))
    for (edit, flagged) in [
        (
            { (r: inout GenerationRequest) in r.tokenMergingRatio = 0.8 },
            "--tome must be 0...0.75 (the share of tokens merged; 3 of every 4 at most), got 0.8"
        ),
        (
            { (r: inout GenerationRequest) in r.tokenMergingRatio = -.infinity },
            "--tome must be 0...0.75 (the share of tokens merged; 3 of every 4 at most), got -inf"
        ),
        ({ (r: inout GenerationRequest) in r.deepCacheInterval = 0 }, "--deepcache must be 1...500 (steps between full UNet passes; 1: off), got 0"),
        ({ (r: inout GenerationRequest) in r.deepCacheBranch = 2 }, "--deepcache-branch needs a DeepCache interval of 2 or more (--deepcache N)"),
        (
            { (r: inout GenerationRequest) in (r.deepCacheInterval, r.deepCacheBranch) = (3, 12) },
            "--deepcache-branch must be 0...11 (block × 3 + layer from the UNet's top), got 12"
        ),
    ] {
        var bad = request
        edit(&bad)
        var failure: InvalidGenerationRequest?
        do { try bad.validate() } catch { failure = error as? InvalidGenerationRequest }
        #expect(failure?.flagged == flagged)
    }
    (request.tokenMergingRatio, request.deepCacheInterval, request.deepCacheBranch) = (0.5, 3, 1)
    try request.validate()
    #expect(request.parametersText(width: 64, height: 64).hasSuffix(", Token merging ratio: 0.5, DeepCache interval: 3, DeepCache branch: 1"))
    (request.tokenMergingRatio, request.deepCacheInterval, request.deepCacheBranch) = (0, 1, nil)
    try request.validate()
    #expect(
        !request.parametersText(width: 64, height: 64).contains("Token merging")
            && !request.parametersText(width: 64, height: 64).contains("DeepCache"))
}
