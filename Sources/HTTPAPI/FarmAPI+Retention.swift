import FarmModel
import Foundation
import Hummingbird
import JobStore

extension FarmAPI {
    /// `POST /v1/prune`, admin only: removes the tasks, images and events of jobs finished longer ago than
    /// `?older_than=30d` (without it: only jobs past their own `expires_after`), VACUUMs unless `?vacuum=false`, and
    /// answers a `PruneReport`.
    func addRetentionRoutes(admin: APIRoutes) {
        let pool = self.pool
        admin.on(.post, "prune") { request, _ in
            var olderThan: Double?
            var vacuum = true
            for (key, value) in request.uri.queryParameters {
                switch key {
                case "older_than":
                    do { olderThan = try RetentionPeriod.seconds(String(value), field: "older_than") } catch let failure as ValidationFailure {
                        throw APIError(status: 400, failure.message, field: "older_than")
                    }
                case "vacuum":
                    guard let flag = Bool(String(value)) else { throw APIError(status: 400, "vacuum must be true or false", field: "vacuum") }
                    vacuum = flag
                default:
                    throw APIError(status: 400, "unknown query parameter \(key)", field: String(key))
                }
            }
            let (age, clean) = (olderThan, vacuum)
            return try Self.json(try await pool.run { try $0.prune(olderThan: age, vacuum: clean) })
        }
    }
}
