import FarmModel
import Foundation
import JobSpec
import Testing

@Test func retentionPeriodsReadAsUsersWriteThem() throws {
    #expect(try RetentionPeriod.seconds("30d", field: "f") == 30 * 86_400)
    #expect(try RetentionPeriod.seconds("12h", field: "f") == 43_200 && RetentionPeriod.seconds(" 90m", field: "f") == 5400)
    #expect(try RetentionPeriod.seconds("2w", field: "f") == 1_209_600 && RetentionPeriod.seconds("3600", field: "f") == 3600)
    #expect(try RetentionPeriod.seconds("1.5s", field: "f") == 1.5)
    for bad in ["", "d", "-1d", "0", "soon", "1y", "nan", "100000d"] {
        #expect(throws: ValidationFailure.self, "\(bad)") { try RetentionPeriod.seconds(bad, field: "f") }
    }
}

@Test func specsCarryExpiryAndNotifyAndNameTheFieldWhenBad() throws {
    let spec = try JobSpec.parse(
        """
        name: n
        model: m
        expires_after: 7d
        notify: http://127.0.0.1:9000/hook
        items: [{prompt: a}]
        """, file: "s.yaml")
    #expect(spec.expiresAfter == 7 * 86_400 && spec.notify == "http://127.0.0.1:9000/hook")
    // Flags (and the API's query parameters) fill what the spec leaves out, in every format.
    let lines = try JobSpec.parse("a fox\n", file: "s.txt", overrides: ["model": "m", "expires_after": "1h", "notify": "https://h/x"])
    #expect(lines.expiresAfter == 3600 && lines.notify == "https://h/x")
    let kept = try JobSpec.parse("name: n\nmodel: m\nexpires_after: 60\nitems: [{prompt: a}]\n", file: "s.yaml", overrides: ["expires_after": "1h"])
    #expect(kept.expiresAfter == 60)
    for (text, field) in [
        ("name: n\nmodel: m\nexpires_after: soon\nitems: [{prompt: a}]\n", "expires_after"),
        ("name: n\nmodel: m\nnotify: file:///etc/passwd\nitems: [{prompt: a}]\n", "notify"),
        ("name: n\nmodel: m\nnotify: [a]\nitems: [{prompt: a}]\n", "notify"),
    ] {
        #expect {
            try JobSpec.parse(text, file: "s.yaml")
        } throws: { error in
            (error as? JobSpecError)?.field == field && (error as? JobSpecError)?.line != nil
        }
    }
}
