import FarmModel
import Foundation
import JobStore

extension DatabaseRequest {
    /// Runs the request's statements on the database lane's store.
    func run(on store: JobStore) throws -> DatabaseAnswer {
        switch self {
        case .isKeyAllowed(let key, _):
            return .keyAllowed(try store.isWorkerKeyAllowed(key))
        case .registerWorker(let hello, let publicKey, _):
            return .registered(operatorState: try store.registerWorker(hello, publicKey: publicKey))
        case .touchWorker(let workerID, let loadedModel, let modelHashes):
            try store.touchWorker(workerID, loadedModel: loadedModel, modelHashes: modelHashes)
            return .done
        case .jobOfTask(let task):
            return .job(try store.jobOfTask(task))
        case .claim(let claim):
            let assignments = try store.claimWithWaits(
                workerID: claim.workerID, capabilities: claim.capabilities, limit: claim.limit, leaseSeconds: claim.leaseSeconds,
                preferredModel: claim.preferredModel)
            // Input images go once per worker, before the first task that needs them.
            var blobs: [(hash: String, data: Data)] = []
            var known = claim.sentBlobs
            for hash in assignments.flatMap(\.assignment.parameters.inputHashes) where known.insert(hash).inserted {
                if let data = try store.blob(hash) { blobs.append((hash, data)) }
            }
            return .claimed(Claimed(assignments: assignments, blobs: blobs))
        case .releaseUnsent(let tasks, let workerID):
            return .requeued(try store.releaseUnsent(tasks, workerID: workerID))
        case .complete(let header, let png, let workerID, _):
            return .reported(try store.complete(header, png: png, workerID: workerID))
        case .fail(let failure, let workerID, _):
            return .reported(try store.fail(failure, workerID: workerID))
        case .progress(let reports, _, let leaseSeconds):
            _ = try store.progress(batch: reports.map { ($0.report, $0.workerID) }, leaseSeconds: leaseSeconds)
            return .done
        case .requeueWorker(let workerID):
            return .requeued(try store.requeueWorker(workerID))
        case .upkeep(let held, let names):
            let clock = ContinuousClock()
            let roundTrip = try clock.measure { try store.ping() }
            // Tasks cancelled (with their job) while a worker holds them; operators' drain and cordon (farm drain|cordon|uncordon).
            return .upkeep(
                Upkeep(
                    roundTrip: roundTrip.seconds, cancelled: held.isEmpty ? [] : try store.cancelledTasks(among: held),
                    states: names.isEmpty ? [:] : try store.workerStates(names), expired: try store.requeueExpired()))
        }
    }
}

extension CoordinatorMetrics {
    /// Updates the metric the state machine named.
    mutating func record(_ metric: CoordinatorMetric) {
        switch metric {
        case .workerModelLoad(let worker, let seconds): workerModelLoad(worker, seconds: seconds)
        case .workerSpeed(let worker, let speed): workerSpeed(worker, stepsPerSecond: speed)
        case .dispatchLatency(let seconds): dispatchLatency.recordSeconds(seconds)
        case .imageStored: imageStored()
        case .requeued(let count, let reason): requeued(count, reason: reason)
        case .leaseExpiries(let count): leaseExpiries.increment(by: count)
        case .swept(let connected):
            connectedWorkers.record(connected)
            updateRate()
        case .databaseRoundTrip(let seconds): databaseRoundTrip.recordSeconds(seconds)
        }
    }
}
