import FarmModel
import Foundation
import Testing

/// The records' JSON: the field names, nulls and absences the HTTP API and `farm … --json` have always shown.
private func json<Value: Encodable>(_ value: Value) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

@Test func recordsKeepTheirJSONShape() throws {
    let counts = TaskCounts([.done: 3, .queued: 1])
    #expect(try json(counts) == #"{"cancelled":0,"done":3,"failed":0,"queued":1,"running":0}"#)
    let detail = JobDetail(
        id: 7, name: "n", state: .active, model: "m", counts: counts, tasksPerSecond: 0, etaSeconds: nil,
        failures: [.init(reason: "bad", tasks: 2)])
    #expect(try json(detail).contains(#""eta_seconds":null"#) && json(detail).contains(#""tasks_per_second":0"#))
    #expect(try JSONDecoder().decode(JobDetail.self, from: Data(json(detail).utf8)) == detail)

    let idle = WorkerRecord(
        name: "w", host: "h", state: .cordoned, models: "a,b", slots: 2, device: "cpu", loadedModel: "", secondsSinceHeartbeat: 1.5,
        failures: 0, running: 0, current: nil)
    #expect(try !json(idle).contains("current") && json(idle).contains(#""loaded_model":"""#))
    var busy = idle
    busy.current = TaskRecord(id: 9, job: 7, step: 2, totalSteps: 4, stepsPerSecond: nil)
    #expect(try json(busy).contains(#""current":{"job":7,"step":2,"steps_per_second":null,"task":9,"total_steps":4}"#))
    #expect(try JSONDecoder().decode(WorkerRecord.self, from: Data(json(busy).utf8)) == busy)

    let token = TokenRecord(id: 1, role: .admin, name: "n", created: "c", revoked: nil)
    #expect(try json(token) == #"{"created":"c","id":1,"name":"n","revoked":null,"role":"admin"}"#)
    let key = WorkerKeyRecord(publicKey: "k", name: "n", created: "c", revoked: "r")
    #expect(try json(key) == #"{"created":"c","name":"n","public_key":"k","revoked":"r"}"#)
    #expect(try json(JobActionReply(id: 1, counts: TaskCounts())).contains("requeued") == false)
    #expect(try json(ErrorReply(error: "e", field: "f")) == #"{"error":"e","field":"f"}"#)
    #expect(OperatorAction.allCases.map(\.status) == [.draining, .cordoned, .online])
}

@Test func eventPayloadsAreCompactSortedJSON() throws {
    let event = FarmEvent(name: "done", job: 3, payload: .init(task: 5, job: 3, attempt: 1, seed: UInt64.max))
    #expect(event.data == #"{"attempt":1,"job":3,"seed":18446744073709551615,"task":5}"#)
    #expect(event.payload == FarmEventPayload(task: 5, job: 3, attempt: 1, seed: .max))
    #expect(try JSONDecoder().decode(FarmEvent.self, from: JSONEncoder().encode(event)) == event)
    #expect(FarmEvent.keepAlive.serverSentEvent == ": keep-alive\n\n")
}
