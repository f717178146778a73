import Coordinator
import FarmModel
import Foundation
import JobStore
import Testing

// What the coordinator's state machine does with the pixel limits and VAEs workers announce.

/// Joins a worker that announces `maxPixels` and `vaes`.
private func join(_ farm: inout CoordinatorHarness, _ peer: Data, name: String, maxPixels: Int?, vaes: [String]? = nil) {
    farm.receive(.hello(.init(workerID: name, host: "host", models: ["sdxl"], slots: 2, maxPixels: maxPixels, vaes: vaes)), from: peer)
    guard let register = farm.queries.first else {
        Issue.record("\(name) was not registered: \(farm.actions)")
        return
    }
    farm.answer(register, .registered(operatorState: .online))
}

/// A task of `width` × `height` (nil: the model's native size).
private func sized(_ task: Int64, _ width: Int?, _ height: Int?) -> WireMessage.Assignment {
    .init(taskID: task, attempt: 1, parameters: TaskParameters(prompt: "p", model: "sdxl", width: width, height: height), jobID: 7)
}

/// Each worker's claim carries its own limit (the farm's when it announced none) and its VAEs.
@Test func claimsCarryEachWorkersAnnouncedLimit() {
    var farm = CoordinatorHarness()
    join(&farm, alice, name: "alice", maxPixels: 512 * 512, vaes: ["sdxl-vae"])
    join(&farm, bob, name: "bob", maxPixels: nil)
    farm.tick()
    let claims = Dictionary(uniqueKeysWithValues: farm.claims.map { ($0.workerID, $0.capabilities) })
    #expect(claims["alice"]?.maxPixels == 512 * 512 && claims["alice"]?.vaes == ["sdxl-vae"])
    #expect(claims["bob"]?.maxPixels == Limits().maxPixels && claims["bob"]?.vaes == nil)
    #expect(farm.state.workers[alice]?.pixelLimit(Limits()) == 512 * 512)
}

/// A claim answered after the worker introduced itself again with a lower limit: what no longer fits is given back
/// to the queue, not sent (nor its input images); the rest is sent.
@Test func tasksAboveTheLimitAreReleasedNotSent() {
    var farm = CoordinatorHarness()
    join(&farm, alice, name: "alice", maxPixels: 1024 * 1024)
    farm.tick()
    let claim = farm.claims[0]
    #expect(claim.capabilities.maxPixels == 1024 * 1024)
    join(&farm, alice, name: "alice", maxPixels: 512 * 512)
    var large = sized(2, 1024, 1024)
    large.parameters.initImage = "aa"
    let fitting = [sized(1, 512, 512), sized(3, nil, nil)]
    farm.answer(
        .claim(claim),
        .claimed(Claimed(assignments: [(fitting[0], 0), (large, 0), (fitting[1], 0)], blobs: [("aa", Data([1]))])))
    #expect(farm.sent.map(\.message) == fitting.map { .assign($0) })
    #expect(
        farm.queries.contains { if case .releaseUnsent(let tasks, let worker) = $0 { tasks == [2] && worker == "alice" } else { false } },
        "\(farm.queries)")
    #expect(farm.logs.contains("released 1 task(s) above the 262144-pixel limit of worker alice"))
    #expect(farm.state.workers[alice]?.inFlight == [1, 3])
}

/// A HELLO's pixel limit must fit the database's 32-bit column, and its VAE names follow the model names' rules.
@Test func helloLimitsAndVAENamesAreChecked() {
    func problem(maxPixels: Int? = nil, vaes: [String]? = nil) -> String? {
        WireMessage.Hello(workerID: "w", host: "h", models: ["m"], slots: 1, maxPixels: maxPixels, vaes: vaes).problem()
    }
    #expect(problem(maxPixels: 4096, vaes: ["sdxl-vae"]) == nil)
    #expect(problem(maxPixels: 0) == "max pixels must be 1…2147483647, got 0")
    #expect(problem(maxPixels: Int(Int32.max) + 1) == "max pixels must be 1…2147483647, got 2147483648")
    #expect(problem(vaes: ["bad\nname"]) == "VAE name \"bad\nname\" must be 1…200 bytes without control characters")
    #expect(problem(vaes: Array(repeating: "v", count: 1_001)) == "at most 1000 VAEs, got 1001")
}
