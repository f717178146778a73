import FarmModel
import Foundation
import Logging
import TestSupport
import Testing

/// The daemons' JSON lines stay one parseable line whatever the message holds, keep numbers as
/// numbers and carry every metadata key; the text form puts metadata after the message.
@Test func logLinesAreOneJSONObjectOrOneTextLine() throws {
    let lines = ThreadSafeBox<[String]>([])
    var json = Logger(
        label: "farm.worker", factory: { FarmLogHandler(label: $0, json: true, logLevel: .info, sink: { line in lines.mutate { $0.append(line) } }) })
    json[metadataKey: "worker"] = "w1"
    json.info("task \"7\"\nfailed\tbadly \u{1}", metadata: .task(7, job: 3, attempt: 2))
    json.debug("below the level")
    #expect(lines.value.count == 1 && !lines.value[0].contains("\n"))
    let object = try #require(try JSONSerialization.jsonObject(with: Data(lines.value[0].utf8)) as? [String: Any])
    #expect(object["message"] as? String == "task \"7\"\nfailed\tbadly \u{1}")
    #expect(object["label"] as? String == "worker" && object["level"] as? String == "info")
    #expect(object["task"] as? Int == 7 && object["job"] as? Int == 3 && object["attempt"] as? Int == 2 && object["worker"] as? String == "w1")
    #expect((object["time"] as? String)?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil)

    lines.mutate { $0 = [] }
    let text = Logger(
        label: "farm.coordinator",
        factory: { FarmLogHandler(label: $0, json: false, logLevel: .info, sink: { line in lines.mutate { $0.append(line) } }) })
    text.warning("worker lost", metadata: ["worker": "host 1", "requeued": .stringConvertible(2)])
    #expect(lines.value.count == 1 && lines.value[0].hasSuffix(#" warning coordinator: worker lost requeued=2 worker="host 1""#), "\(lines.value)")
}
