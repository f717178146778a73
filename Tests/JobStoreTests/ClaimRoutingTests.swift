import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Testing

/// A task naming a refiner goes only to a worker that has that model and renders refiners; one naming a VAE only to
/// a worker that has that VAE. Workers that announce no VAE list (older ones, which would ignore both fields) get
/// neither kind. The claim's plan is unchanged by the checks.
@Test func claimsRouteRefinersAndVAEsToWorkersThatHaveThem() throws {
    let store = try migratedStore()
    var refined = TaskParameters(prompt: "refined", model: "m", width: 64, height: 64, steps: 2)
    refined.refiner = "r"
    var decoded = TaskParameters(prompt: "vae", model: "m", width: 64, height: 64, steps: 2)
    decoded.vae = "v"
    let plain = TaskParameters(prompt: "plain", model: "m", width: 64, height: 64, steps: 2)
    let job = try store.enqueue(name: "routing", model: "m", tasks: [refined, decoded, plain])
    func claim(_ worker: String, _ capabilities: WorkerCapabilities) throws -> [String] {
        try store.claim(workerID: worker, capabilities: capabilities, limit: 5, leaseSeconds: 30).map(\.parameters.prompt)
    }
    #expect(try claim("old", WorkerCapabilities(models: ["m", "r"])) == ["plain"], "an older worker gets neither")
    #expect(try claim("no-refiner", WorkerCapabilities(models: ["m"], vaes: ["v"])) == ["vae"])
    #expect(try claim("no-vae", WorkerCapabilities(models: ["m", "r"], vaes: [])) == ["refined"])
    #expect(try store.progress(job: job).counts == [.running: 3])
    let plan = try store.claimPlan(workerID: "w", capabilities: WorkerCapabilities(models: ["m", "r"], vaes: ["v"]), limit: 4)
    #expect(!plan.contains("Seq Scan on tasks"), "\(plan)")
    try expectCountsConsistent(store)
}
