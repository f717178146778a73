import FarmModel
import Foundation
import Testing

/// The records' JSON: the field names, nulls and absences the HTTP API and `farm … --json` have always shown.
private func json<Value: Encodable>(_ value: Value) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// A record decoded from JSON, as JobStore reads the JSON that PostgreSQL builds.
private func decode<Value: Decodable>(_ type: Value.Type, _ text: String) throws -> Value {
    try JSONDecoder().decode(type, from: Data(text.utf8))
}

@Test func recordsKeepTheirJSONShape() throws {
    let zero = #"{"queued":0,"running":0,"done":0,"failed":0,"cancelled":0}"#
    let counts = try decode(TaskCounts.self, #"{"queued":1,"running":0,"done":3,"failed":0,"cancelled":0}"#)
    #expect(try json(counts) == #"{"cancelled":0,"done":3,"failed":0,"queued":1,"running":0}"#)
    let detail = try decode(
        JobDetail.self,
        #"{"id":7,"name":"n","owner":"o","tasks":4,"state":"active","model":"m","counts":{"queued":1,"running":0,"done":3,"failed":0,"cancelled":0},"#
            + #""tasks_per_second":0,"eta_seconds":null,"failures":[{"reason":"bad","tasks":2}]}"#)
    #expect(detail.counts == counts && detail.etaSeconds == nil && detail.failures.map(\.tasks) == [2])
    #expect(try json(detail).contains(#""eta_seconds":null"#) && json(detail).contains(#""tasks_per_second":0"#))
    #expect(try JSONDecoder().decode(JobDetail.self, from: Data(json(detail).utf8)) == detail)

    let idle = try decode(
        WorkerRecord.self,
        #"{"name":"w","host":"h","state":"cordoned","models":"a,b","slots":2,"device":"cpu","loaded_model":"","#
            + #""seconds_since_heartbeat":1.5,"failures":0,"running":0,"current":null}"#)
    #expect(try !json(idle).contains("current") && json(idle).contains(#""loaded_model":"""#))
    var busy = idle
    busy.current = try decode(TaskRecord.self, #"{"task":9,"job":7,"step":2,"total_steps":4,"steps_per_second":null}"#)
    #expect(try json(busy).contains(#""current":{"job":7,"step":2,"steps_per_second":null,"task":9,"total_steps":4}"#))
    #expect(try JSONDecoder().decode(WorkerRecord.self, from: Data(json(busy).utf8)) == busy)

    let token = try decode(TokenRecord.self, #"{"id":1,"role":"admin","name":"n","owner":"o","created":"c","revoked":null}"#)
    #expect(try json(token) == #"{"created":"c","id":1,"name":"n","owner":"o","revoked":null,"role":"admin"}"#)
    let key = try decode(WorkerKeyRecord.self, #"{"public_key":"k","name":"n","created":"c","revoked":"r"}"#)
    #expect(try json(key) == #"{"created":"c","name":"n","public_key":"k","revoked":"r"}"#)
    let reply = try decode(JobActionReply.self, #"{"id":1,"counts":"# + zero + #","requeued":null}"#)
    #expect(try json(reply).contains("requeued") == false)
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
