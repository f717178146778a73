import FarmModel
import Foundation
import Hummingbird
import JobStore

extension FarmAPI {
    /// `/v1/quotas…` (admin): owners' quotas and fair-share weights; and `POST /v1/jobs/{job}/priority`, which a submit
    /// token may send for its owner's jobs (up to `maxSubmitPriority`).
    func addOwnerRoutes(submit: APIRoutes, admin: APIRoutes) {
        let pool = self.pool
        admin.on(.get, "quotas") { _, _ in
            try Self.json(try await pool.run { try $0.quotas() })
        }
        admin.on(.put, "quotas/:owner") { request, context in
            guard let owner = context.parameters.get("owner") else { throw APIError(status: 400, "the owner is missing", field: "owner") }
            let object = try Self.jsonObject(try await Self.collect(request.body), known: ["max_queued", "max_running", "weight"])
            let maxQueued = try Self.optionalInteger(object, "max_queued")
            let maxRunning = try Self.optionalInteger(object, "max_running")
            let weight = try Self.optionalNumber(object, "weight") ?? 1
            let quotas = try await pool.run { store -> [OwnerQuota] in
                try store.setQuota(owner: owner, maxQueued: maxQueued, maxRunning: maxRunning, weight: weight)
                return try store.quotas()
            }
            return try Self.json(quotas.first { $0.owner == owner }!)
        }
        submit.on(.post, "jobs/:job/priority") { request, context in
            let job = try context.pathID("job")
            let object = try Self.jsonObject(try await Self.collect(request.body), known: ["priority"])
            guard let priority = try Self.optionalInteger(object, "priority") else {
                throw APIError(status: 400, "priority is required", field: "priority")
            }
            if context.grant?.role != .admin && priority > self.maxSubmitPriority {
                throw APIError(
                    status: 400, "priority \(priority) is above \(self.maxSubmitPriority), the highest a submit token may ask for", field: "priority")
            }
            let scope = context.scope
            let detail = try await pool.run { store -> JobDetail? in
                guard let owner = try store.jobOwner(job), scope == nil || scope == owner else { return nil }
                try store.setPriority(job: job, priority: priority)
                return try store.jobDetail(job)
            }
            guard let detail else { throw APIError(status: 404, "job \(job) does not exist") }
            return try Self.json(detail)
        }
    }

    /// A request body that must be a JSON object with only `known` fields; a 400 names the first unknown one.
    static func jsonObject(_ data: Data, known: Set<String>) throws -> [String: JSONValue] {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: data) else {
            throw APIError(status: 400, "the body must be a JSON object with \(known.sorted().joined(separator: ", "))", field: "body")
        }
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError(status: 400, "unknown field \(unknown); known: \(known.sorted().joined(separator: ", "))", field: unknown)
        }
        return object
    }

    /// An optional whole-number field (absent or null: nil).
    static func optionalInteger(_ object: [String: JSONValue], _ field: String) throws -> Int? {
        switch object[field] {
        case nil, .null?: return nil
        case .integer(let value)? where Int64(Int32.min)...Int64(Int32.max) ~= value: return Int(value)
        default: throw APIError(status: 400, "\(field) must be a whole number", field: field)
        }
    }

    /// An optional number field (absent or null: nil).
    static func optionalNumber(_ object: [String: JSONValue], _ field: String) throws -> Double? {
        switch object[field] {
        case nil, .null?: return nil
        case .integer(let value)?: return Double(value)
        case .number(let value)?: return value
        default: throw APIError(status: 400, "\(field) must be a number", field: field)
        }
    }
}
