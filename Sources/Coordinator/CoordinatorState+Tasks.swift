import FarmModel
import Foundation
import Imaging
import JobStore
import Logging

/// Tasks going out and coming back: claims, progress, results, failures.
extension CoordinatorState {
    /// Claims work for every worker with free slots, one claim per worker; the next pass starts when all are answered.
    mutating func dispatch() {
        guard workWaiting, claimsInFlight == 0 else { return }
        let idle = workers.values.filter { $0.freeSlots > 0 }
        guard !idle.isEmpty else { return }
        // Only a notification, an answer that handed work out, a failure or a sweep brings new work once a pass found none.
        workWaiting = false
        for worker in idle {
            claimsInFlight += 1
            query(
                .claim(
                    ClaimRequest(
                        routingID: worker.routingID, workerID: worker.hello.workerID,
                        capabilities: worker.capabilities(configuration.limits),
                        limit: worker.freeSlots, leaseSeconds: configuration.leaseSeconds, preferredModel: worker.loadedModel,
                        sentBlobs: worker.sentBlobs)))
        }
    }

    /// Sends what a claim leased, with the input images first, unless the worker left meanwhile: then the tasks
    /// go back rather than wait out their lease. So do tasks larger than the worker's pixel limit: the claim
    /// filtered with the limit it had when asked, and a worker that introduced itself again since, with a lower
    /// one, is never sent what its memory no longer allows.
    mutating func handOut(_ claimed: Claimed, for claim: ClaimRequest) {
        workWaiting = true
        guard var worker = workers[claim.routingID], worker.hello.workerID == claim.workerID else {
            query(.releaseUnsent(claimed.assignments.map(\.assignment.taskID), workerID: claim.workerID))
            return
        }
        let limit = worker.pixelLimit(configuration.limits)
        func fits(_ parameters: TaskParameters) -> Bool { (parameters.width ?? 0) * (parameters.height ?? 0) <= limit }
        let tooLarge = claimed.assignments.filter { !fits($0.assignment.parameters) }.map(\.assignment.taskID)
        if !tooLarge.isEmpty {
            query(.releaseUnsent(tooLarge, workerID: claim.workerID))
            log(.warning, "released \(tooLarge.count) task(s) above the \(limit)-pixel limit of worker \(claim.workerID)")
        }
        let assignments = claimed.assignments.filter { fits($0.assignment.parameters) }
        let needed = Set(assignments.flatMap(\.assignment.parameters.inputHashes))
        for blob in claimed.blobs where needed.contains(blob.hash) && worker.sentBlobs.insert(blob.hash).inserted {
            send(.blob(sha256: blob.hash, data: blob.data), to: claim.routingID)
        }
        for (assignment, waited) in assignments {
            metric(.dispatchLatency(seconds: waited))
            taskJobs[assignment.taskID] = assignment.jobID
            send(.assign(assignment), to: claim.routingID)
            worker.inFlight.insert(assignment.taskID)
            log(
                .debug, "task \(assignment.taskID) assigned",
                .task(assignment.taskID, job: assignment.jobID, attempt: assignment.attempt, worker: claim.workerID))
        }
        workers[claim.routingID] = worker
    }

    /// Keeps the latest progress of a task for the next flush; only the connection the task was handed to
    /// reports on it (the database checks the lease again).
    mutating func progress(_ report: WireMessage.Progress, from worker: ConnectedWorker) {
        guard worker.inFlight.contains(report.taskID) else { return }
        let workerID = worker.hello.workerID
        pendingProgress[report.taskID] = PendingProgress(report: report, workerID: workerID)
        if !progressWritten.contains(report.taskID) { progressStarted.insert(report.taskID) }
        if let speed = report.itemsPerSecond { metric(.workerSpeed(worker: workerID, stepsPerSecond: speed)) }
        withJob(of: report.taskID) { job in
            FarmEvent(
                name: "progress", job: job,
                payload: .init(
                    task: report.taskID, job: job, attempt: report.attempt, step: report.step, total: report.total, worker: workerID))
        }
    }

    /// Stores a result from the worker that holds its lease, acknowledging it once stored; an undecodable or
    /// wrongly sized PNG fails the attempt instead (the task is handed out again).
    mutating func storeResult(_ header: WireMessage.ResultHeader, _ png: Data, from worker: ConnectedWorker) {
        let workerID = worker.hello.workerID
        if let problem = resultProblem(header, png) {
            recordFailure(
                .init(taskID: header.taskID, attempt: header.attempt, kind: .host, message: "result rejected: \(problem)"),
                workerID: workerID, routingID: worker.routingID)
            return
        }
        guard reporting.insert(header.taskID).inserted else { return }
        query(.complete(header, png: png, workerID: workerID, routingID: worker.routingID))
    }

    mutating func resultStored(_ header: WireMessage.ResultHeader, outcome: ReportOutcome, workerID: String, routingID: Data) {
        if case .rejected(let problem) = outcome {
            recordFailure(
                .init(taskID: header.taskID, attempt: header.attempt, kind: .host, message: "result rejected: \(problem)"),
                workerID: workerID, routingID: routingID)
            return
        }
        if outcome == .stored { metric(.imageStored) }
        attemptOver(header.taskID, routingID: routingID)
        send(.ack(taskID: header.taskID, attempt: header.attempt), to: routingID)
        let job = taskJobs.removeValue(forKey: header.taskID)
        if let job {
            outbox.append(
                .post(
                    FarmEvent(
                        name: "done", job: job,
                        payload: .init(task: header.taskID, job: job, attempt: header.attempt, seed: header.seed))))
        }
        var metadata = Logger.Metadata.task(header.taskID, job: job, attempt: header.attempt, worker: workerID)
        metadata["outcome"] = "\(outcome)"
        log(.info, "task \(header.taskID) attempt \(header.attempt) from \(workerID): \(outcome)", metadata)
    }

    /// Stores a failed attempt reported by (or, for a rejected result, on behalf of) a worker, and acknowledges it
    /// once stored.
    mutating func recordFailure(_ failure: WireMessage.Failure, workerID: String, routingID: Data) {
        guard reporting.insert(failure.taskID).inserted else { return }
        query(.fail(failure, workerID: workerID, routingID: routingID))
    }

    mutating func failureStored(_ failure: WireMessage.Failure, outcome: ReportOutcome, workerID: String, routingID: Data) {
        attemptOver(failure.taskID, routingID: routingID)
        send(.ack(taskID: failure.taskID, attempt: failure.attempt), to: routingID)
        withJob(of: failure.taskID) { job in
            FarmEvent(
                name: "failed", job: job,
                payload: .init(
                    task: failure.taskID, job: job, attempt: failure.attempt, kind: "\(failure.kind)", message: failure.message))
        }
        var metadata = Logger.Metadata.task(failure.taskID, job: taskJobs[failure.taskID], attempt: failure.attempt, worker: workerID)
        metadata["kind"] = "\(failure.kind)"
        metadata["outcome"] = "\(outcome)"
        log(.warning, "task \(failure.taskID) attempt \(failure.attempt) failed (\(failure.kind)): \(failure.message) [\(outcome)]", metadata)
    }

    /// A task's attempt is stored: its slot is free again and what was kept of its progress goes.
    mutating func attemptOver(_ task: Int64, routingID: Data) {
        workers[routingID]?.inFlight.remove(task)
        forgetProgress(of: task)
        previews[task] = nil
        workWaiting = true
    }

    /// Why a result cannot be stored, or nil: it must be a PNG that decodes, of the size its header states.
    func resultProblem(_ header: WireMessage.ResultHeader, _ png: Data) -> String? {
        let image: PNGImage
        do {
            image = try PNGImage(
                pngData: png, limits: PNGLimits(maxSide: configuration.limits.maxSide, maxPixels: configuration.limits.maxPixels))
        } catch {
            return "not a decodable PNG (\(error))"
        }
        guard image.width == header.width && image.height == header.height else {
            return "the PNG is \(image.width)x\(image.height) but the result says \(header.width)x\(header.height)"
        }
        return nil
    }

    /// Drops what is kept of a task's progress once its attempt is over.
    mutating func forgetProgress(of task: Int64) {
        pendingProgress[task] = nil
        progressStarted.remove(task)
        progressWritten.remove(task)
    }

    /// Writes the latest progress of each task in one statement per flush, not one write per step; a task's
    /// first progress is written at the next pass, so that it shows as started at once whatever the period.
    mutating func flushProgress(now: Instant) {
        guard !pendingProgress.isEmpty, !flushInFlight,
            !progressStarted.isEmpty || now.seconds(since: lastProgressFlush) >= configuration.progressFlushSeconds
        else { return }
        let reports = Array(pendingProgress.values)
        pendingProgress.removeAll()
        let started = progressStarted
        progressWritten.formUnion(started)
        progressStarted.removeAll()
        flushInFlight = true
        lastProgressFlush = now
        query(.progress(reports, started: started, leaseSeconds: configuration.leaseSeconds))
    }
}
