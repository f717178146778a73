import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import Testing

/// A submit token steers its owner's jobs (actions, priority) and no one else's; an admin sets quotas, filters jobs by
/// owner and steers everything; the `tasks` format carries inputs by stored image.
@Test func submitTokensSteerOnlyTheirOwnersJobs() async throws {
    let farm = try APIFixture()
    let alice = try farm.store.createToken(role: .submit, name: "alice").token
    let bob = try farm.store.createToken(role: .submit, name: "bob").token
    let spec =
        #"{"name": "n", "model": "synthetic", "defaults": {"width": 32, "height": 32, "steps": 2}, "items": [{"prompt": "a"}, {"prompt": "b"}]}"#
    try await farm.test { client in
        func submit(_ token: String) async throws -> Int64 {
            let response = try await client.execute(
                uri: "/v1/jobs?format=json", method: .post, headers: bearer(token), body: ByteBuffer(string: spec))
            return try JSONDecoder().decode(SubmitReply.self, from: Data(response.body.readableBytesView)).id
        }
        let aliceJob = try await submit(alice)
        let bobJob = try await submit(bob)
        for action in ["pause", "resume", "retry", "cancel"] {
            let hidden = try await client.execute(uri: "/v1/jobs/\(bobJob)/\(action)", method: .post, headers: bearer(alice))
            #expect(hidden.status == .notFound)
            let hiddenReply = try errorReply(hidden)
            #expect(hiddenReply.error == "job \(bobJob) does not exist", "\(action)")
        }
        let priority = ByteBuffer(string: #"{"priority": -3}"#)
        let hidden = try await client.execute(uri: "/v1/jobs/\(bobJob)/priority", method: .post, headers: bearer(alice), body: priority)
        #expect(hidden.status == .notFound)
        let raised = try await client.execute(uri: "/v1/jobs/\(aliceJob)/priority", method: .post, headers: bearer(alice), body: priority)
        #expect(raised.status == .ok)
        #expect(try farm.store.jobs().first { $0.id == aliceJob }?.priority == -3 && farm.store.jobs().first { $0.id == bobJob }?.priority == 0)
        let tooHigh = try await client.execute(
            uri: "/v1/jobs/\(aliceJob)/priority", method: .post, headers: bearer(alice), body: ByteBuffer(string: #"{"priority": 1000}"#))
        #expect(tooHigh.status == .badRequest)
        let tooHighReply = try errorReply(tooHigh)
        #expect(tooHighReply.field == "priority")
        let paused = try await client.execute(uri: "/v1/jobs/\(aliceJob)/pause", method: .post, headers: bearer(alice))
        let pausedState = try farm.store.jobs().first { $0.id == aliceJob }?.state
        #expect(paused.status == .ok && pausedState == .paused)
        // The admin steers another owner's job and sees one owner's jobs on asking.
        #expect(try await client.execute(uri: "/v1/jobs/\(bobJob)/pause", method: .post, headers: bearer(farm.admin)).status == .ok)
        let bobs = try await client.execute(uri: "/v1/jobs?owner=bob", method: .get, headers: bearer(farm.admin))
        #expect(try JSONDecoder().decode([JobRecord].self, from: Data(bobs.body.readableBytesView)).map(\.id) == [bobJob])
        let ownOnly = try await client.execute(uri: "/v1/jobs?owner=bob", method: .get, headers: bearer(alice))
        #expect(try JSONDecoder().decode([JobRecord].self, from: Data(ownOnly.body.readableBytesView)).map(\.id) == [aliceJob])

        // Quotas: set by an admin, enforced on the next submission over HTTP.
        let quota = try await client.execute(
            uri: "/v1/quotas/alice", method: .put, headers: bearer(farm.admin), body: ByteBuffer(string: #"{"max_queued": 3, "weight": 2}"#))
        #expect(quota.status == .ok)
        #expect(
            try JSONDecoder().decode(OwnerQuota.self, from: Data(quota.body.readableBytesView))
                == OwnerQuota(owner: "alice", maxQueued: 3, maxRunning: nil, weight: 2, queued: 2, running: 0))
        let refused = try await client.execute(uri: "/v1/jobs?format=json", method: .post, headers: bearer(alice), body: ByteBuffer(string: spec))
        #expect(refused.status == .badRequest)
        let refusedReply = try errorReply(refused)
        #expect(refusedReply.error.contains("may have 3 tasks queued and has 2"))
        let badQuota = try await client.execute(
            uri: "/v1/quotas/alice", method: .put, headers: bearer(farm.admin), body: ByteBuffer(string: #"{"max_queud": 3}"#))
        #expect(badQuota.status == .badRequest)
        let badQuotaReply = try errorReply(badQuota)
        #expect(badQuotaReply.field == "max_queud")

        // The `tasks` format names inputs by stored image only.
        let hash = try farm.store.storeBlob(Data([0x89, 0x50, 0x4E, 0x47]))
        var task = TaskParameters(prompt: "edit", model: "synthetic", width: 32, height: 32, steps: 2)
        task.initImage = hash
        task.strength = 0.5
        let body = try JSONEncoder().encode(SubmittedTasksBody(name: "t", model: "synthetic", priority: 0, maxAttempts: 2, tasks: [task]))
        let stored = try await client.execute(uri: "/v1/jobs?format=tasks", method: .post, headers: bearer(bob), body: ByteBuffer(data: body))
        #expect(stored.status == .created)
        task.initImage = "/etc/passwd"
        let path = try JSONEncoder().encode(SubmittedTasksBody(name: "t", model: "synthetic", priority: 0, maxAttempts: 2, tasks: [task]))
        let refusedPath = try await client.execute(uri: "/v1/jobs?format=tasks", method: .post, headers: bearer(bob), body: ByteBuffer(data: path))
        #expect(refusedPath.status == .badRequest)
        let refusedPathReply = try errorReply(refusedPath)
        #expect(refusedPathReply.field == "tasks[0].init_image")
    }
}

/// The `tasks` format's body, spelled out here so that the test pins the wire names.
private struct SubmittedTasksBody: Encodable {
    var name: String
    var model: String
    var priority: Int
    var maxAttempts: Int
    var tasks: [TaskParameters]

    enum CodingKeys: String, CodingKey {
        case name, model, priority, tasks
        case maxAttempts = "max_attempts"
    }
}
