import FarmModel
import Foundation
import JobStore
import Logging

/// Tasks going out and coming back: claims, results, batched progress.
extension CoordinatorServer {
    /// Claims work for every worker with free slots, one claim per worker on the database lane; the next
    /// pass starts when all are answered.
    func dispatch() {
        guard workWaiting, claimsInFlight == 0 else { return }
        let idle = workers.filter { $0.value.freeSlots > 0 }
        guard !idle.isEmpty else { return }
        // Only a notification, an answer that handed work out, a failure or a sweep brings new work once a pass found none.
        workWaiting = false
        for (routingID, worker) in idle {
            let capabilities = WorkerCapabilities(
                models: worker.hello.models,
                maxPixels: worker.hello.maxPixels ?? configuration.limits.maxPixels)
            let (workerID, slots, preferred, sent) = (worker.hello.workerID, worker.freeSlots, worker.loadedModel, worker.sentBlobs)
            let leaseSeconds = configuration.leaseSeconds
            claimsInFlight += 1
            database.run(
                { store -> Claimed in
                    let assignments = try store.claimWithWaits(
                        workerID: workerID, capabilities: capabilities, limit: slots,
                        leaseSeconds: leaseSeconds, preferredModel: preferred)
                    // Input images go once per worker, before the first task that needs them.
                    var blobs: [(hash: String, data: Data)] = []
                    var known = sent
                    for hash in assignments.flatMap(\.assignment.parameters.inputHashes) where known.insert(hash).inserted {
                        if let data = try store.blob(hash) { blobs.append((hash, data)) }
                    }
                    return Claimed(assignments: assignments, blobs: blobs)
                },
                then: { [weak self] claimed in
                    guard let self else { return }
                    self.claimsInFlight -= 1
                    guard let claimed, !claimed.assignments.isEmpty else { return }
                    self.handOut(claimed, to: routingID, workerID: workerID)
                })
        }
    }

    private func handOut(_ claimed: Claimed, to routingID: Data, workerID: String) {
        workWaiting = true
        guard var worker = workers[routingID], worker.hello.workerID == workerID else {
            // It left while the claim ran: the tasks go back rather than wait out their lease.
            let ids = claimed.assignments.map(\.assignment.taskID)
            database.run({ try $0.releaseUnsent(ids, workerID: workerID) }, then: { _ in })
            return
        }
        for blob in claimed.blobs where worker.sentBlobs.insert(blob.hash).inserted {
            send(.blob(sha256: blob.hash, data: blob.data), to: routingID)
        }
        for (assignment, waited) in claimed.assignments {
            metrics.dispatchLatency.recordSeconds(waited)
            taskJobs[assignment.taskID] = assignment.jobID
            send(.assign(assignment), to: routingID)
            worker.inFlight.insert(assignment.taskID)
            logger.debug(
                "task \(assignment.taskID) assigned",
                metadata: .task(
                    assignment.taskID, job: assignment.jobID, attempt: assignment.attempt,
                    worker: workerID))
        }
        workers[routingID] = worker
    }

    /// Stores a result from the worker that holds its lease, acknowledging it once stored; an undecodable or
    /// wrongly sized PNG fails the attempt instead (the task is handed out again).
    func storeResult(_ header: WireMessage.ResultHeader, _ png: Data, from worker: ConnectedWorker, routingID: Data) {
        let workerID = worker.hello.workerID
        if let problem = resultProblem(header, png) {
            recordFailure(
                .init(taskID: header.taskID, attempt: header.attempt, kind: .host, message: "result rejected: \(problem)"),
                workerID: workerID, routingID: routingID)
            return
        }
        guard reporting.insert(header.taskID).inserted else { return }
        database.run(
            { try $0.complete(header, png: png, workerID: workerID) },
            then: { [weak self] outcome in
                guard let self else { return }
                self.reporting.remove(header.taskID)
                // No database: not acknowledged; the worker sends it again.
                guard let outcome else { return }
                if case .rejected(let problem) = outcome {
                    self.recordFailure(
                        .init(taskID: header.taskID, attempt: header.attempt, kind: .host, message: "result rejected: \(problem)"),
                        workerID: workerID, routingID: routingID)
                    return
                }
                if outcome == .stored { self.metrics.imageStored() }
                self.workers[routingID]?.inFlight.remove(header.taskID)
                self.forgetProgress(of: header.taskID)
                self.previews[header.taskID] = nil
                self.workWaiting = true
                self.send(.ack(taskID: header.taskID, attempt: header.attempt), to: routingID)
                let job = self.taskJobs.removeValue(forKey: header.taskID)
                if let job {
                    self.events.post(
                        FarmEvent(
                            name: "done", job: job,
                            payload: [
                                "task": header.taskID, "job": job, "attempt": header.attempt, "seed": header.seed,
                            ]))
                }
                var metadata = Logger.Metadata.task(header.taskID, job: job, attempt: header.attempt, worker: workerID)
                metadata["outcome"] = "\(outcome)"
                self.logger.info("task \(header.taskID) attempt \(header.attempt) from \(workerID): \(outcome)", metadata: metadata)
            })
    }

    /// Drops what the loop keeps of a task's progress once its attempt is over.
    func forgetProgress(of task: Int64) {
        pendingProgress[task] = nil
        progressStarted.remove(task)
        progressWritten.remove(task)
    }

    /// Writes the latest progress of each task in one statement per flush, not one write per step; a task's
    /// first progress is written at the next pass, so that it shows as started at once whatever the period.
    func flushProgress(force: Bool) {
        guard !pendingProgress.isEmpty, !flushInFlight,
            force || !progressStarted.isEmpty || Date().timeIntervalSince(lastProgressFlush) >= configuration.progressFlushSeconds
        else { return }
        let reports = Array(pendingProgress.values)
        let leaseSeconds = configuration.leaseSeconds
        pendingProgress.removeAll()
        let started = progressStarted
        progressWritten.formUnion(started)
        progressStarted.removeAll()
        flushInFlight = true
        lastProgressFlush = Date()
        database.run(
            { try $0.progress(batch: reports, leaseSeconds: leaseSeconds) },
            then: { [weak self] written in
                guard let self else { return }
                self.flushInFlight = false
                // Not written: kept for the next flush unless newer progress came meanwhile.
                if written == nil {
                    for entry in reports where self.pendingProgress[entry.report.taskID] == nil { self.pendingProgress[entry.report.taskID] = entry }
                    self.progressWritten.subtract(started)
                    self.progressStarted.formUnion(started)
                }
            })
    }
}

/// What one claim brought: the assignments (with how long each task waited) and the input images they need.
struct Claimed {
    var assignments: [(assignment: WireMessage.Assignment, waited: Double)]
    var blobs: [(hash: String, data: Data)]
}
