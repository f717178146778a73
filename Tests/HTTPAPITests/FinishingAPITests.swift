import FarmModel
import Foundation
import HTTPAPI
import Hummingbird
import HummingbirdTesting
import JobStore
import Testing

/// Variation seeds, the resize mode and hires fix reach the tasks from query parameters and specs; a bad value is a
/// 400 naming the field.
@Test func finishingFieldsTravelThroughTheAPI() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let spec = "name: hires\nmodel: sd15\nitems: [{prompt: a fox, subseed: 5}, {prompt: a hen, hires_denoise: 0.4, deepcache_branch: 1}]\n"
        let submitted = try await client.execute(
            uri:
                "/v1/jobs?format=yaml&subseed_strength=0.3&subseed=9&hires_scale=1.5&hires_upscaler=bicubic&token_merging_ratio=0.5&deepcache_interval=3",
            method: .post,
            headers: bearer(farm.submit), body: ByteBuffer(string: spec))
        #expect(submitted.status == .created, "\(String(buffer: submitted.body))")
        let bad = try await client.execute(
            uri: "/v1/jobs?hires_scale=20", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: spec))
        #expect(bad.status == .badRequest)
        let reply = try errorReply(bad)
        #expect(reply.field == "hires_scale" && reply.error.contains("must be 1...8.0"), "\(reply)")
        let badMerge = try await client.execute(
            uri: "/v1/jobs?token_merging_ratio=0.9", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: spec))
        #expect(badMerge.status == .badRequest)
        let mergeReply = try errorReply(badMerge)
        #expect(mergeReply.field == "token_merging_ratio" && mergeReply.error.contains("0...0.75"), "\(mergeReply)")
    }
    let claimed = try farm.store.claim(workerID: "w", capabilities: WorkerCapabilities(models: ["sd15"]), limit: 5, leaseSeconds: 30)
    #expect(claimed.map(\.parameters.subseed) == [5, 9])
    #expect(claimed.map(\.parameters.subseedStrength) == [0.3, 0.3])
    #expect(claimed.map(\.parameters.hiresScale) == [1.5, 1.5])
    #expect(claimed.map(\.parameters.hiresDenoise) == [nil, 0.4])
    #expect(claimed.map(\.parameters.hiresUpscaler) == ["bicubic", "bicubic"])
    #expect(claimed.map(\.parameters.tokenMergingRatio) == [0.5, 0.5])
    #expect(claimed.map(\.parameters.deepCacheInterval) == [3, 3])
    #expect(claimed.map(\.parameters.deepCacheBranch) == [nil, 1])
}
