import FarmModel
import Foundation
@_spi(Testing) import JobStore
import Testing

/// The model store's SQL: a model added is listed with its holders (replaced as a whole per worker), a job naming it
/// carries its hash in every task (a name not in the store carries none), only a worker that fetches models or
/// holds that one may claim it, a held model is claimed before one the worker would fetch, and removal says whether
/// the bytes are still used; tasks naming stored LoRAs and VAEs carry their hashes and go to fetching workers without
/// them; a sidecar config is stored with a model (only a JSON object) and found by its hash. The
/// claim's plan stays on the indexes.
@Test func modelStoreListsHoldersSetsTaskHashesAndRoutesClaims() throws {
    let store = try migratedStore()
    let (a, b) = (String(repeating: "a", count: 64), String(repeating: "b", count: 64))
    try store.addModel(name: "alpha", kind: "checkpoint", sha256: a, size: 10)
    try store.addModel(name: "beta", kind: "checkpoint", sha256: b, size: 20)
    try store.addModel(name: "alias", kind: "checkpoint", sha256: b, size: 20)
    #expect(throws: ValidationFailure.self) { try store.addModel(name: "bad/name", kind: "checkpoint", sha256: a, size: 1) }
    #expect(throws: ValidationFailure.self) { try store.addModel(name: "x", kind: "teapot", sha256: a, size: 1) }
    #expect(throws: ValidationFailure.self) { try store.addModel(name: "x", kind: "checkpoint", sha256: a, size: 1, config: "[1]") }
    try store.addModel(name: "configured", kind: "checkpoint", sha256: a, size: 10, config: #"{"prediction_type":"v_prediction"}"#)
    #expect(try store.models(named: "configured").first?.hasConfig == true)
    #expect(try store.models(named: "alpha").first?.hasConfig == false)
    #expect(try store.modelSidecar(sha256: a) == #"{"prediction_type":"v_prediction"}"#, "the sidecar is found by the bytes' hash")
    #expect(try store.modelSidecar(sha256: b) == nil)
    _ = try store.removeModel(named: "configured")
    try store.setWorkerModels("w1", hashes: [a, b])
    try store.setWorkerModels("w2", hashes: [b])
    try store.setWorkerModels("w1", hashes: [b])
    #expect(try store.models().map(\.name) == ["alias", "alpha", "beta"])
    #expect(try store.models(named: "beta").first?.holders == ["w1", "w2"])
    #expect(try store.models(named: "alpha").first?.holders == [])
    #expect(try store.storedModelHashes(names: ["alpha", "nope"]) == ["alpha": a])

    var forged = TaskParameters(prompt: "forged", model: "m", width: 64, height: 64, steps: 2)
    forged.modelSHA256 = a
    let plainJob = try store.enqueue(name: "plain", model: "m", tasks: [forged])
    let alphaJob = try store.enqueue(
        name: "alpha", model: "alpha", tasks: [TaskParameters(prompt: "a", model: "alpha", width: 64, height: 64, steps: 2)])
    let betaJob = try store.enqueue(name: "beta", model: "beta", tasks: [TaskParameters(prompt: "b", model: "beta", width: 64, height: 64, steps: 2)])
    func hash(_ job: Int64) throws -> String? {
        try store.testConnection.query("SELECT parameters->>'model_sha256' AS h FROM tasks WHERE job_id = $1", [job]).single().decodeIfPresent("h")
    }
    #expect(try hash(plainJob) == nil, "the store is the field's only writer")
    #expect(try hash(alphaJob) == a && hash(betaJob) == b)

    var fetcher = WorkerCapabilities(models: [])
    fetcher.fetchesModels = true
    fetcher.modelHashes = [b]
    let plan = try store.claimPlan(workerID: "w1", capabilities: fetcher, limit: 4)
    #expect(!plan.contains("Seq Scan on tasks"), "\(plan)")
    #expect(try store.claim(workerID: "none", capabilities: WorkerCapabilities(models: []), limit: 5, leaseSeconds: 30).isEmpty)
    // Older first by age, but the held model (beta) comes before the one it would fetch (alpha).
    #expect(try store.claim(workerID: "w1", capabilities: fetcher, limit: 1, leaseSeconds: 30).map(\.parameters.prompt) == ["b"])
    #expect(try store.claim(workerID: "w1", capabilities: fetcher, limit: 5, leaseSeconds: 30).map(\.parameters.prompt) == ["a"])

    // A task naming a stored LoRA (field or tag) and a stored VAE carries their hashes; a worker without a LoRA folder
    // may claim it only when it fetches.
    let (c, d) = (String(repeating: "c", count: 64), String(repeating: "d", count: 64))
    try store.addModel(name: "style", kind: "lora", sha256: c, size: 5)
    try store.addModel(name: "sharp", kind: "vae", sha256: a, size: 5)
    try store.addModel(name: "big", kind: "upscaler", sha256: d, size: 5)
    var styled = TaskParameters(prompt: "a <lora:style:0.5> cat", model: "n", width: 64, height: 64, steps: 2)
    styled.vae = "sharp"
    styled.upscaler = "big"
    styled.loras = [TaskParameters.LoRA(name: "local", weight: 1)]
    let styledJob = try store.enqueue(name: "styled", model: "n", tasks: [styled])
    let carried = try store.testConnection.query("SELECT parameters->>'stored_add_ons' AS s FROM tasks WHERE job_id = $1", [styledJob]).single()
    let addOns = try JSONDecoder().decode(StoredAddOns.self, from: Data(try carried.decode("s", as: String.self).utf8))
    #expect(addOns.loras == ["style": c] && addOns.vae == a && addOns.upscaler == d, "only stored names carry hashes: \(addOns)")
    var plain = WorkerCapabilities(models: ["n"])
    plain.vaes = []
    #expect(try store.claim(workerID: "w2", capabilities: plain, limit: 5, leaseSeconds: 30).isEmpty)
    styled.loras = nil
    let storedOnly = try store.enqueue(name: "stored-only", model: "n", tasks: [styled])
    var fetching = plain
    fetching.fetchesModels = true
    #expect(try store.claim(workerID: "w2", capabilities: fetching, limit: 5, leaseSeconds: 30).map(\.jobID) == [storedOnly])

    #expect(try store.removeModel(named: "beta")?.stillUsed == true, "alias still names the bytes")
    #expect(try store.removeModel(named: "alias")?.stillUsed == false)
    #expect(try store.removeModel(named: "alias") == nil)
}
