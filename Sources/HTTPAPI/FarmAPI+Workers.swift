import FarmModel
import Foundation
import Hummingbird
import JobStore

extension FarmAPI {
    /// `/v1/workers…`, admin only: the registry with its live columns, and drain, cordon and uncordon.
    func addWorkerRoutes(admin: APIRoutes) {
        let pool = self.pool
        admin.on(.get, "workers") { _, _ in
            try Self.json(try await pool.run { try $0.workers() })
        }
        for action in OperatorAction.allCases {
            admin.on(.post, "workers/:worker/\(action.rawValue)") { _, context in
                let worker = try context.parameters.require("worker")
                guard try await pool.run({ try $0.setWorkerState(worker, action.status) }) else {
                    throw APIError(status: 404, "worker \(worker) is not known to the farm")
                }
                return try Self.json(WorkerActionReply(name: worker, state: action.status))
            }
        }
    }
}
