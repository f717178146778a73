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
        for (routingID, worker) in workers where now.timeIntervalSince(worker.lastSeen) > configuration.workerTimeoutSeconds {
            guard let requeued = withStore({ try $0.requeueWorker(worker.hello.workerID) }) else { return }
            metrics.requeued(requeued, reason: "worker_lost")
            workers[routingID] = nil
            workWaiting = true
            logger.warning("worker \(worker.hello.workerID) lost after \(configuration.missedHeartbeats) missed heartbeats; requeued \(requeued) task(s)",
                           metadata: ["worker": "\(worker.hello.workerID)", "requeued": .stringConvertible(requeued)])
        }
        // Tasks cancelled (with their job) while a worker holds them: tell it to stop.
        let held = workers.values.flatMap(\.inFlight)
        if let cancelled = withStore({ try $0.cancelledTasks(among: held) }), !cancelled.isEmpty {
            for (routingID, var worker) in workers {
                for task in cancelled where worker.inFlight.contains(task) {
                    send(.cancel(taskID: task), to: routingID)
                    worker.inFlight.remove(task)
                }
                workers[routingID] = worker
            }
            workWaiting = true
        }
        // Operators drain and cordon workers through the database (farm drain|cordon|uncordon).
        if !workers.isEmpty, let states = withStore({ try $0.workerStates(workers.values.map(\.hello.workerID)) }) {
            for (routingID, var worker) in workers {
                worker.operatorState = states[worker.hello.workerID] ?? "online"
                if worker.operatorState == "draining" && !worker.toldToDrain {
                    send(.drain, to: routingID)
                    worker.toldToDrain = true
                    logger.notice("draining worker \(worker.hello.workerID)", metadata: ["worker": "\(worker.hello.workerID)"])
                }
                if worker.operatorState == "online" { worker.toldToDrain = false }
                workers[routingID] = worker
            }
        }
        if let requeued = withStore({ try $0.requeueExpired() }), requeued > 0 {
            metrics.leaseExpiries.increment(by: requeued)
            metrics.requeued(requeued, reason: "lease_expired")
            workWaiting = true
            logger.warning("requeued \(requeued) task(s) whose lease expired", metadata: ["requeued": .stringConvertible(requeued)])
        }
        // Claims skip tasks still backing off; look again once a second.
        workWaiting = true
        let ping = Date()
        if withStore({ try $0.connection.query("SELECT 1") }) != nil {
            metrics.databaseRoundTrip.recordSeconds(Date().timeIntervalSince(ping))
        }
        metrics.connectedWorkers.record(workers.count)
        metrics.updateRate(now)
    }
}
