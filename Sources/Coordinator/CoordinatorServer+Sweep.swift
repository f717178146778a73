import FarmModel
import Foundation
import JobStore
import Logging

/// The once-a-heartbeat upkeep: lost workers, cancelled tasks, operator states, expired leases, metrics.
extension CoordinatorServer {
    func sweep() {
        let now = Date()
        guard now.timeIntervalSince(lastSweep) >= configuration.heartbeatSeconds else { return }
        lastSweep = now
        // Loss is decided here from what the loop heard, whatever the database is doing.
        for (routingID, worker) in workers where now.timeIntervalSince(worker.lastSeen) > configuration.workerTimeoutSeconds {
            workers[routingID] = nil
            for task in worker.inFlight { forgetProgress(of: task) }
            let workerID = worker.hello.workerID
            logger.warning(
                "worker \(workerID) lost after \(configuration.missedHeartbeats) missed heartbeats; requeueing its tasks",
                metadata: ["worker": "\(workerID)"])
            database.run(
                { try $0.requeueWorker(workerID) },
                then: { [weak self] requeued in
                    guard let self, let requeued else { return }
                    self.metrics.requeued(requeued, reason: "worker_lost")
                    self.workWaiting = true
                    self.logger.warning(
                        "requeued \(requeued) task(s) of lost worker \(workerID)",
                        metadata: ["worker": "\(workerID)", "requeued": .stringConvertible(requeued)])
                })
        }
        // Claims skip tasks still backing off; look again once a second.
        workWaiting = true
        metrics.connectedWorkers.record(workers.count)
        metrics.updateRate(now)
        guard !sweepInFlight else { return }
        sweepInFlight = true
        let held = workers.values.flatMap(\.inFlight)
        let names = workers.values.map(\.hello.workerID)
        database.run(
            { store -> Upkeep in
                let ping = Date()
                try store.ping()
                let roundTrip = Date().timeIntervalSince(ping)
                // Tasks cancelled (with their job) while a worker holds them; operators' drain and cordon (farm drain|cordon|uncordon).
                return Upkeep(
                    roundTrip: roundTrip, cancelled: held.isEmpty ? [] : try store.cancelledTasks(among: held),
                    states: names.isEmpty ? [:] : try store.workerStates(names), expired: try store.requeueExpired())
            },
            then: { [weak self] upkeep in
                guard let self else { return }
                self.sweepInFlight = false
                if let upkeep { self.apply(upkeep) }
            })
    }

    private func apply(_ upkeep: Upkeep) {
        metrics.databaseRoundTrip.recordSeconds(upkeep.roundTrip)
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
            if worker.operatorState == "draining" && !worker.toldToDrain {
                send(.drain, to: routingID)
                worker.toldToDrain = true
                logger.notice("draining worker \(worker.hello.workerID)", metadata: ["worker": "\(worker.hello.workerID)"])
            }
            if worker.operatorState == "online" { worker.toldToDrain = false }
            workers[routingID] = worker
        }
        if upkeep.expired > 0 {
            metrics.leaseExpiries.increment(by: upkeep.expired)
            metrics.requeued(upkeep.expired, reason: "lease_expired")
            workWaiting = true
            logger.warning("requeued \(upkeep.expired) task(s) whose lease expired", metadata: ["requeued": .stringConvertible(upkeep.expired)])
        }
    }
}

/// What one sweep read and did in the database.
struct Upkeep {
    var roundTrip: Double
    var cancelled: [Int64]
    var states: [String: String]
    var expired: Int
}
