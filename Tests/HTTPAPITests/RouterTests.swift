import FarmModel
import Foundation
import HTTPAPI
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import Postgres
import TestSupport
import Testing

/// The repository's Migrations folder, found from this file's path.
let migrationsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Migrations")

/// The API over a fresh migrated database, with an admin and a submit token, driven in-process (no socket).
struct APIFixture: @unchecked Sendable {
    let store: JobStore
    let api: FarmAPI
    let admin: String
    let submit: String

    init() throws {
        let conninfo = try TemporaryPostgres.shared.createDatabase()
        let connection = try Connection(conninfo)
        try Migrator(folder: migrationsFolder).apply(to: connection)
        store = JobStore(connection: connection)
        admin = try store.createToken(role: .admin, name: "test-admin").token
        submit = try store.createToken(role: .submit, name: "test-submit").token
        api = FarmAPI(conninfo: conninfo, connections: 2, metrics: { "# no metrics\n" })
    }

    /// Runs `body` with a client of the router.
    func test(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await Application(router: api.router()).test(.router, body)
    }
}

/// Headers with `token` as the bearer token.
func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

/// The error body of an answer.
func errorReply(_ response: TestResponse) throws -> ErrorReply {
    try JSONDecoder().decode(ErrorReply.self, from: Data(response.body.readableBytesView))
}

@Test func tokensAreCheckedBeforeAnyRoute() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let missing = try await client.execute(uri: "/v1/jobs", method: .get)
        #expect(missing.status == .unauthorized)
        #expect(try errorReply(missing) == ErrorReply(error: "missing bearer token (Authorization: Bearer TOKEN)"))
        #expect(missing.headers[.contentType] == "application/json")
        let unknown = try await client.execute(uri: "/v1/jobs", method: .get, headers: bearer(String(repeating: "0", count: 64)))
        #expect(try unknown.status == .unauthorized && errorReply(unknown).error == "invalid or revoked token")
        let events = try await client.execute(uri: "/v1/events", method: .get)
        #expect(events.status == .unauthorized)
        // A submit token on an admin route.
        for (method, uri) in [(HTTPRequest.Method.get, "/v1/workers"), (.get, "/v1/tokens"), (.get, "/v1/quotas"), (.put, "/v1/quotas/x")] {
            let forbidden = try await client.execute(uri: uri, method: method, headers: bearer(farm.submit))
            #expect(forbidden.status == .forbidden, "\(method) \(uri)")
            #expect(try errorReply(forbidden) == ErrorReply(error: "this route needs an admin token"))
        }
        #expect(try await client.execute(uri: "/v1/workers", method: .get, headers: bearer(farm.admin)).status == .ok)
        #expect(try await client.execute(uri: "/v1/jobs", method: .get, headers: bearer(farm.submit)).status == .ok)
    }
}

@Test func unknownPathsAre404AndOtherMethods405() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        // No token needed to learn that a path does not exist.
        let missing = try await client.execute(uri: "/v1/nothing", method: .get)
        #expect(missing.status == .notFound && missing.headers[.contentType] == "application/json")
        #expect(try errorReply(missing) == ErrorReply(error: "no route GET /v1/nothing"))
        #expect(try await client.execute(uri: "/v1/jobs/1/frobnicate", method: .post, headers: bearer(farm.admin)).status == .notFound)
        #expect(try await client.execute(uri: "/index.php", method: .get).status == .notFound)
        // An id that is not a positive integer names nothing.
        let badID = try await client.execute(uri: "/v1/jobs/abc", method: .get)
        #expect(try badID.status == .notFound && (errorReply(badID)).error == "no job abc")
        let noJob = try await client.execute(uri: "/v1/jobs/999999", method: .get, headers: bearer(farm.admin))
        #expect(try noJob.status == .notFound && (errorReply(noJob)).error == "job 999999 does not exist")

        let wrong = try await client.execute(uri: "/v1/jobs", method: .delete, headers: bearer(farm.admin))
        #expect(wrong.status == .methodNotAllowed)
        #expect(try errorReply(wrong) == ErrorReply(error: "DELETE is not allowed on /v1/jobs"))
        #expect(wrong.headers[.allow] == "GET, POST")
        #expect(try await client.execute(uri: "/v1/jobs/1/cancel", method: .get).status == .methodNotAllowed)
        #expect(try await client.execute(uri: "/v1/workers/w1/drain", method: .get).status == .methodNotAllowed)
        let metrics = try await client.execute(uri: "/metrics", method: .post)
        #expect(try metrics.status == .methodNotAllowed && errorReply(metrics).error == "/metrics takes GET")
    }
}

@Test func submitThenReadTheJobBack() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let spec = "name: round-trip\nmodel: m\ndefaults: {steps: 3, width: 64, height: 64}\nitems: [{prompt: a fox}, {prompt: a hen}]\n"
        let submitted = try await client.execute(
            uri: "/v1/jobs?format=yaml", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: spec))
        #expect(submitted.status == .created, "\(String(buffer: submitted.body))")
        let reply = try JSONDecoder().decode(SubmitReply.self, from: Data(submitted.body.readableBytesView))
        #expect(reply.tasks == 2)

        let read = try await client.execute(uri: "/v1/jobs/\(reply.id)", method: .get, headers: bearer(farm.submit))
        #expect(read.status == .ok && read.headers[.contentType] == "application/json")
        let detail = try JSONDecoder().decode(JobDetail.self, from: Data(read.body.readableBytesView))
        #expect(detail.id == reply.id && detail.name == "round-trip" && detail.model == "m" && detail.state == .active)
        #expect(detail.counts == (try farm.store.jobDetail(reply.id))?.counts)
        let listed = try await client.execute(uri: "/v1/jobs", method: .get, headers: bearer(farm.submit))
        #expect(try JSONDecoder().decode([JobRecord].self, from: Data(listed.body.readableBytesView)).map(\.id) == [reply.id])
        let images = try await client.execute(uri: "/v1/jobs/\(reply.id)/images", method: .get, headers: bearer(farm.submit))
        #expect(images.status == .ok && String(buffer: images.body) == "[]")

        // An admin steers it; the answer carries its counts.
        let paused = try await client.execute(uri: "/v1/jobs/\(reply.id)/pause", method: .post, headers: bearer(farm.admin))
        #expect(paused.status == .ok, "\(String(buffer: paused.body))")
    }
}

/// The refiner, its switch and the VAE reach the tasks from the spec and from query parameters; a bad switch is a
/// 400 naming it.
@Test func refinerAndVAETravelThroughTheAPI() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let spec = "name: xl\nmodel: sdxl\nitems: [{prompt: a fox, width: 64, height: 64}, {prompt: a hen, refiner_switch: 0.6}]\n"
        let submitted = try await client.execute(
            uri: "/v1/jobs?format=yaml&refiner=sdxl-refiner&refiner_switch=0.75&vae=sdxl-vae", method: .post, headers: bearer(farm.submit),
            body: ByteBuffer(string: spec))
        #expect(submitted.status == .created, "\(String(buffer: submitted.body))")
        let bad = try await client.execute(
            uri: "/v1/jobs?refiner_switch=1.5&refiner=r", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: spec))
        #expect(bad.status == .badRequest)
        let reply = try errorReply(bad)
        #expect(reply.field == "refiner_switch" && reply.error.contains("must be in (0, 1)"), "\(reply)")
        let lonely = try await client.execute(
            uri: "/v1/jobs?refiner_switch=0.5", method: .post, headers: bearer(farm.submit),
            body: ByteBuffer(string: "model: m\nitems: [{prompt: a}]\n"))
        #expect(try lonely.status == .badRequest && errorReply(lonely).error.hasSuffix("needs a refiner"))
    }
    // A worker with the model, the refiner and the VAE claims both tasks, as submitted (an item's own switch wins).
    let claimed = try farm.store.claim(
        workerID: "w", capabilities: WorkerCapabilities(models: ["sdxl", "sdxl-refiner"], vaes: ["sdxl-vae"]), limit: 5, leaseSeconds: 30)
    #expect(claimed.map(\.parameters.refiner) == ["sdxl-refiner", "sdxl-refiner"])
    #expect(claimed.map(\.parameters.refinerSwitch) == [0.75, 0.6])
    #expect(claimed.map(\.parameters.vae) == ["sdxl-vae", "sdxl-vae"])
}

@Test func badInputIs400NamingTheField() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let spec = "name: bad\nmodel: m\ndefaults: {steps: -3, width: 32, height: 32}\nitems:\n  - prompt: a fox\n"
        let bad = try await client.execute(uri: "/v1/jobs", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: spec))
        #expect(bad.status == .badRequest)
        let reply = try errorReply(bad)
        #expect(reply.field?.contains("steps") == true && reply.line != nil && !reply.error.contains("\n"), "\(reply)")
        let format = try await client.execute(uri: "/v1/jobs?format=xml", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: "x"))
        #expect(try format.status == .badRequest && errorReply(format).field == "format")
        let query = try await client.execute(uri: "/v1/events?since=3", method: .get, headers: bearer(farm.submit))
        #expect(try query.status == .badRequest && errorReply(query).field == "since")
        let role = try await client.execute(
            uri: "/v1/tokens", method: .post, headers: bearer(farm.admin), body: ByteBuffer(string: #"{"role": "root"}"#))
        #expect(try role.status == .badRequest && errorReply(role) == ErrorReply(error: "role must be submit or admin", field: "role"))
        // A submit token may not ask for a priority above the ceiling (0).
        let urgent = try await client.execute(
            uri: "/v1/jobs", method: .post, headers: bearer(farm.submit), body: ByteBuffer(string: "model: m\npriority: 5\nitems: [{prompt: a}]"))
        #expect(try urgent.status == .badRequest && errorReply(urgent).field == "priority")
        #expect(try farm.store.jobs().isEmpty)
    }
}

@Test func tokensOverTheAPI() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let created = try await client.execute(
            uri: "/v1/tokens", method: .post, headers: bearer(farm.admin), body: ByteBuffer(string: #"{"role": "submit", "name": "ci"}"#))
        #expect(created.status == .created)
        let token = try JSONDecoder().decode(CreatedToken.self, from: Data(created.body.readableBytesView))
        #expect(token.token.count == 64 && token.role == .submit)
        #expect(try await client.execute(uri: "/v1/jobs", method: .get, headers: bearer(token.token)).status == .ok)
        let listed = try await client.execute(uri: "/v1/tokens", method: .get, headers: bearer(farm.admin))
        #expect(String(buffer: listed.body).contains("\"ci\"") && !String(buffer: listed.body).contains(token.token))
        #expect(try await client.execute(uri: "/v1/tokens/\(token.id)/revoke", method: .post, headers: bearer(farm.admin)).status == .ok)
        #expect(try await client.execute(uri: "/v1/jobs", method: .get, headers: bearer(token.token)).status == .unauthorized)
        let again = try await client.execute(uri: "/v1/tokens/\(token.id)/revoke", method: .post, headers: bearer(farm.admin))
        #expect(try again.status == .notFound && errorReply(again).error == "no unrevoked token has id \(token.id)")
    }
}

@Test func everyAnswerIsNosniff() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let answers = [
            try await client.execute(uri: "/v1/jobs", method: .get, headers: bearer(farm.submit)),
            try await client.execute(uri: "/v1/jobs", method: .get),
            try await client.execute(uri: "/v1/nothing", method: .get),
            try await client.execute(uri: "/v1/jobs", method: .put),
            try await client.execute(uri: "/v1/tasks/12/image", method: .get, headers: bearer(farm.submit)),
            try await client.execute(uri: "/metrics", method: .get),
        ]
        #expect(answers.map { $0.headers[FarmAPIHeaders.noSniff] } == Array(repeating: "nosniff", count: answers.count))
        #expect(answers.last?.status == .ok && answers.last.map { String(buffer: $0.body) } == "# no metrics\n")
    }
}

@Test func anOversizedBodyIs413() async throws {
    let farm = try APIFixture()
    try await farm.test { client in
        let huge = ByteBuffer(repeating: UInt8(ascii: "#"), count: FarmAPI.maxBodyBytes + 1)
        let answer = try await client.execute(uri: "/v1/jobs", method: .post, headers: bearer(farm.submit), body: huge)
        #expect(answer.status == .contentTooLarge)
        #expect(try errorReply(answer) == ErrorReply(error: "the body is larger than 64 MiB", field: "body"))
        #expect(try farm.store.jobs().isEmpty)
    }
}

/// Header names the tests look for.
enum FarmAPIHeaders {
    /// `X-Content-Type-Options`.
    static let noSniff = HTTPField.Name("X-Content-Type-Options")!
}
