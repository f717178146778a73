import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import Testing

/// A one-task JSON spec named `name`.
private func oneTaskSpec(_ name: String) -> ByteBuffer {
    ByteBuffer(
        string: #"{"name": "\#(name)", "model": "synthetic", "defaults": {"width": 32, "height": 32, "steps": 2}, "items": [{"prompt": "a pear"}]}"#)
}

/// The id of a `POST /v1/jobs` answer.
private func submittedID(_ response: TestResponse) throws -> Int64 {
    try JSONDecoder().decode(SubmitReply.self, from: Data(response.body.readableBytesView)).id
}

@Test func aSubmitTokenSeesOnlyItsOwnersJobs() async throws {
    let farm = try APIFixture()
    let alice = try farm.store.createToken(role: .submit, name: "alice-laptop", owner: "alice").token
    let aliceCI = try farm.store.createToken(role: .submit, name: "alice-ci", owner: "alice").token
    let bob = try farm.store.createToken(role: .submit, name: "bob").token
    #expect(try farm.store.tokenGrant(bob) == TokenGrant(role: .submit, owner: "bob"))
    #expect(try farm.store.tokens().map(\.owner) == ["test-admin", "test-submit", "alice", "alice", "bob"])
    try await farm.test { client in
        let json = "/v1/jobs?format=json"
        let aliceJob = try submittedID(try await client.execute(uri: json, method: .post, headers: bearer(alice), body: oneTaskSpec("a")))
        let bobJob = try submittedID(try await client.execute(uri: json, method: .post, headers: bearer(bob), body: oneTaskSpec("b")))
        #expect(try farm.store.jobOwner(aliceJob) == "alice" && farm.store.jobOwner(bobJob) == "bob")

        func jobs(_ token: String) async throws -> [JobRecord] {
            let response = try await client.execute(uri: "/v1/jobs", method: .get, headers: bearer(token))
            return try JSONDecoder().decode([JobRecord].self, from: Data(response.body.readableBytesView))
        }
        // Tokens of one owner share its jobs; an admin sees every job.
        #expect(try await jobs(alice).map(\.id) == [aliceJob])
        #expect(try await jobs(aliceCI).map(\.id) == [aliceJob])
        #expect(try await jobs(bob).map(\.owner) == ["bob"])
        #expect(try await jobs(farm.submit).isEmpty)
        #expect(try await jobs(farm.admin).map(\.id) == [aliceJob, bobJob])

        // Another owner's job answers as one that does not exist, on every route that names it.
        for uri in ["/v1/jobs/\(bobJob)", "/v1/jobs/\(bobJob)/images", "/v1/events?job=\(bobJob)"] {
            let hidden = try await client.execute(uri: uri, method: .get, headers: bearer(alice))
            #expect(hidden.status == .notFound, "\(uri)")
            #expect(try errorReply(hidden).error == "job \(bobJob) does not exist", "\(uri)")
        }
        let own = try await client.execute(uri: "/v1/jobs/\(aliceJob)", method: .get, headers: bearer(alice))
        let detail = try JSONDecoder().decode(JobDetail.self, from: Data(own.body.readableBytesView))
        #expect(own.status == .ok && detail.owner == "alice" && detail.tasks == 1)
        #expect(try await client.execute(uri: "/v1/jobs/\(bobJob)", method: .get, headers: bearer(farm.admin)).status == .ok)
        // A page of a job's images: bad bounds name their field.
        let paged = try await client.execute(uri: "/v1/jobs/\(aliceJob)/images?offset=0&limit=60", method: .get, headers: bearer(alice))
        #expect(paged.status == .ok && String(buffer: paged.body) == "[]")
        for (query, field) in [("limit=0", "limit"), ("offset=-1", "offset"), ("size=3", "size")] {
            let bad = try await client.execute(uri: "/v1/jobs/\(aliceJob)/images?\(query)", method: .get, headers: bearer(alice))
            #expect(try bad.status == .badRequest && errorReply(bad).field == field, "\(query)")
        }

        // Tokens made over HTTP name their owner (by default, their name).
        let made = try await client.execute(
            uri: "/v1/tokens", method: .post, headers: bearer(farm.admin),
            body: ByteBuffer(string: #"{"role": "submit", "name": "carol", "owner": "c"}"#))
        #expect(try JSONDecoder().decode(CreatedToken.self, from: Data(made.body.readableBytesView)).owner == "c")
        let badOwner = try await client.execute(
            uri: "/v1/tokens", method: .post, headers: bearer(farm.admin), body: ByteBuffer(string: #"{"role": "submit", "owner": 7}"#))
        #expect(try badOwner.status == .badRequest && errorReply(badOwner).field == "owner")
    }
}

@Test func theDashboardIsServedWithoutAToken() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        for (path, type, marker) in [
            ("/", "text/html; charset=utf-8", "<script src=\"/dashboard.js\" defer></script>"),
            ("/dashboard.css", "text/css; charset=utf-8", "prefers-color-scheme"),
            ("/dashboard.js", "text/javascript; charset=utf-8", "function renderJobs("),
        ] {
            let response = try await client.execute(uri: path, method: .get)
            #expect(response.status == .ok && response.headers[.contentType] == type, "\(path)")
            #expect(String(buffer: response.body).contains(marker), "\(path)")
            // Nothing from elsewhere: the policy allows the coordinator's own files and API only.
            #expect(response.headers[.contentSecurityPolicy]?.hasPrefix("default-src 'self'") == true, "\(path)")
            #expect(!String(buffer: response.body).contains("http://") && !String(buffer: response.body).contains("https://"), "\(path)")
            let head = try await client.execute(uri: path, method: .head)
            #expect(head.status == .ok && head.body.readableBytes == 0, "\(path)")
        }
        #expect(try await client.execute(uri: "/", method: .post).status == .methodNotAllowed)
        // The submit form's model list: none before any worker connects.
        let models = try await client.execute(uri: "/v1/models", method: .get, headers: bearer(farm.submit))
        #expect(models.status == .ok && String(buffer: models.body) == "[]")
    }
}

@Test func anInitImageIsStoredThenNamedBySpecs() async throws {
    let farm = try APIFixture()
    // A PNG's signature and IHDR header are all the route reads before storing it.
    let png = Data(
        [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8) + [0, 0, 0, 64, 0, 0, 0, 32, 8, 2, 0, 0, 0, 1, 2, 3, 4])
    try await farm.test { client in
        let stored = try await client.execute(uri: "/v1/images", method: .post, headers: bearer(farm.submit), body: ByteBuffer(bytes: png))
        #expect(stored.status == .created)
        let reply = try JSONDecoder().decode([String: JSONValue].self, from: Data(stored.body.readableBytesView))
        let hash = SHA256.hex(of: png)
        #expect(reply["sha256"] == .string(hash) && reply["width"] == .integer(64) && reply["height"] == .integer(32))
        let notPNG = try await client.execute(uri: "/v1/images", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: "GIF89a"))
        #expect(try notPNG.status == .badRequest && errorReply(notPNG).error == "the body must be a PNG image")

        let spec = #"{"model": "synthetic", "defaults": {"init_image": "\#(hash)", "strength": 0.5}, "items": [{"prompt": "a pear"}]}"#
        let submitted = try await client.execute(
            uri: "/v1/jobs?format=json", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: spec))
        #expect(submitted.status == .created, "\(String(buffer: submitted.body))")
        let unknown = spec.replacingOccurrences(of: hash, with: String(repeating: "a", count: 64))
        let refused = try await client.execute(
            uri: "/v1/jobs?format=json", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: unknown))
        #expect(try refused.status == .badRequest && errorReply(refused).field == "tasks")
    }
    #expect(try farm.store.jobs().count == 1)
}
