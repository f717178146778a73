import FarmModel
import Foundation
@_spi(Testing) import HTTPAPI
import Testing

/// docs/openapi.yaml names every route the router serves under /v1, with each of its methods, and no route that does
/// not exist. (Its paths are read with a line pattern: two-space-indented `/path:` keys, four-space-indented methods.)
@Test func openAPIDocumentsEveryRoute() throws {
    let docURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml")
    let text = try String(contentsOf: docURL.standardizedFileURL, encoding: .utf8)
    var documented: Set<String> = []
    var current: String?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
            current = String(line.dropFirst(2).dropLast())
        } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path = current {
            let key = line.trimmingCharacters(in: .whitespaces)
            if let method = ["get:", "head:", "post:", "put:", "delete:", "patch:"].first(where: { key == $0 }) {
                documented.insert("\(method.dropLast().uppercased()) \(path)")
            }
        } else if !line.hasPrefix(" "), !line.isEmpty {
            current = nil
        }
    }
    #expect(documented.count >= 15, "the doc's paths were not read: \(documented)")
    let api = FarmAPI(conninfo: "host=/nonexistent", connections: 1, metrics: { "" })
    // `jobs/:job/cancel` is `/v1/jobs/{id}/{action}` in the doc: path parameters by position, actions as one template.
    func template(_ path: String) -> String {
        "/" + path.split(separator: "/").map { $0.hasPrefix(":") || $0.hasPrefix("{") ? "{}" : String($0) }.joined(separator: "/")
    }
    let docTemplates = Set(
        documented.map { entry -> String in
            let parts = entry.split(separator: " ", maxSplits: 1)
            return "\(parts[0]) " + parts[1].replacingOccurrences(of: #"\{[^}]+\}"#, with: "{}", options: .regularExpression)
        })
    let actionRoutes = JobAction.allCases.map(\.rawValue) + OperatorAction.allCases.map(\.rawValue)
    var served: Set<String> = []
    let routes = api.routeTable().map { (path: String($0.path.drop { $0 == "/" }), methods: $0.methods) }
    #expect(routes.contains { $0.path == "v1/jobs" }, "the router's table was not read: \(routes.map(\.path))")
    for (path, methods) in routes where path.hasPrefix("v1/") {
        var shape = template(path)
        if let last = shape.split(separator: "/").last, actionRoutes.contains(String(last)) {
            shape = shape.split(separator: "/").dropLast().map(String.init).joined(separator: "/") + "/{}"
            shape = "/" + shape.drop { $0 == "/" }
        }
        for method in methods { served.insert("\(method) \(shape)") }
    }
    #expect(served.subtracting(docTemplates).isEmpty, "routes missing from docs/openapi.yaml: \(served.subtracting(docTemplates).sorted())")
    #expect(docTemplates.subtracting(served).isEmpty, "documented routes that do not exist: \(docTemplates.subtracting(served).sorted())")
}
