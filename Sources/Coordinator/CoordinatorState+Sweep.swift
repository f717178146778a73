import FarmModel
import Foundation
import JobStore
import Logging

/// The once-a-heartbeat upkeep: lost workers, cancelled tasks, operator states, expired leases, metrics.
extension CoordinatorState {
    /// Declares silent workers lost (their tasks are requeued) and asks the database for the upkeep reads.
    mutating func sweep(now: Instant) {
        if let lastSweep, now.seconds(since: lastSweep) < configuration.heartbeatSeconds { return }
        lastSweep = now
        // Loss is decided here from what the loop heard, whatever the database is doing.
        for (routingID, worker) in workers where now.seconds(since: worker.lastSeen) > configuration.workerTimeoutSeconds {
            workers[routingID] = nil
            for task in worker.inFlight { forgetProgress(of: task) }
            let workerID = worker.hello.workerID
            log(
                .warning, "worker \(workerID) lost after \(configuration.missedHeartbeats) missed heartbeats; requeueing its tasks",
                ["worker": "\(workerID)"])
            query(.requeueWorker(workerID))
        }
        // Claims skip tasks still backing off; look again once a second.
        workWaiting = true
        metric(.swept(connectedWorkers: workers.count))
        guard !sweepInFlight else { return }
        sweepInFlight = true
        query(.upkeep(held: workers.values.flatMap(\.inFlight), workers: workers.values.map(\.hello.workerID)))
    }

    mutating func lostWorkerRequeued(_ workerID: String, count: Int) {
        metric(.requeued(count, reason: "worker_lost"))
        workWaiting = true
        log(.warning, "requeued \(count) task(s) of lost worker \(workerID)", ["worker": "\(workerID)", "requeued": .stringConvertible(count)])
    }

    /// Acts on the upkeep reads: cancels held tasks whose job was cancelled, follows the operators' drain and
    /// cordon, and counts expired leases.
    mutating func apply(_ upkeep: Upkeep) {
        metric(.databaseRoundTrip(seconds: upkeep.roundTrip))
        if !upkeep.cancelled.isEmpty {
            for (routingID, var worker) in workers {
                for task in upkeep.cancelled where worker.inFlight.contains(task) {
                    send(.cancel(taskID: task), to: routingID)
                    worker.inFlight.remove(task)
                    forgetProgress(of: task)
                }
                workers[routingID] = worker
            }
            workWaiting = true
        }
        for (routingID, var worker) in workers {
            guard let state = upkeep.states[worker.hello.workerID] else { continue }
            worker.operatorState = state
            if worker.operatorState == .draining && !worker.toldToDrain {
                send(.drain, to: routingID)
                worker.toldToDrain = true
                log(.notice, "draining worker \(worker.hello.workerID)", ["worker": "\(worker.hello.workerID)"])
            }
            if worker.operatorState == .online { worker.toldToDrain = false }
            workers[routingID] = worker
        }
        if upkeep.expired > 0 {
            metric(.leaseExpiries(upkeep.expired))
            metric(.requeued(upkeep.expired, reason: "lease_expired"))
            workWaiting = true
            log(.warning, "requeued \(upkeep.expired) task(s) whose lease expired", ["requeued": .stringConvertible(upkeep.expired)])
        }
    }
}
