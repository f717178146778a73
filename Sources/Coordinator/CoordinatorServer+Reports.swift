import FarmModel
import Foundation
import Imaging
import JobStore
import Logging

/// What workers hand in that is not stored as it came: refused hellos, rejected results, failed attempts.
extension CoordinatorServer {
    /// Refuses a hello, logging why.
    func refuse(_ routingID: Data, _ code: Refusal.Code, _ reason: String, worker: String) {
        send(.refused(.init(code, reason)), to: routingID)
        logger.warning("refused worker \(worker.prefix(64).debugDescription): \(reason)", metadata: ["code": "\(code.rawValue)"])
    }

    /// Stores a failed attempt reported by (or, for a rejected result, on behalf of) a worker, and acknowledges it
    /// once stored.
    func recordFailure(_ failure: WireMessage.Failure, workerID: String, routingID: Data) {
        guard reporting.insert(failure.taskID).inserted else { return }
        database.run(
            { try $0.fail(failure, workerID: workerID) },
            then: { [weak self] outcome in
                guard let self else { return }
                self.reporting.remove(failure.taskID)
                guard let outcome else { return }
                self.workers[routingID]?.inFlight.remove(failure.taskID)
                self.forgetProgress(of: failure.taskID)
                self.previews[failure.taskID] = nil
                self.send(.ack(taskID: failure.taskID, attempt: failure.attempt), to: routingID)
                self.workWaiting = true
                let events = self.events
                self.withJob(of: failure.taskID) { job in
                    events.post(
                        FarmEvent(
                            name: "failed", job: job,
                            payload: [
                                "task": failure.taskID, "job": job, "attempt": failure.attempt,
                                "kind": "\(failure.kind)", "message": failure.message,
                            ]))
                }
                var metadata = Logger.Metadata.task(failure.taskID, job: self.taskJobs[failure.taskID], attempt: failure.attempt, worker: workerID)
                metadata["kind"] = "\(failure.kind)"
                metadata["outcome"] = "\(outcome)"
                self.logger.warning(
                    "task \(failure.taskID) attempt \(failure.attempt) failed (\(failure.kind)): \(failure.message) [\(outcome)]",
                    metadata: metadata)
            })
    }

    /// Why a result cannot be stored, or nil: it must be a PNG that decodes, of the size its header states.
    func resultProblem(_ header: WireMessage.ResultHeader, _ png: Data) -> String? {
        let image: PNGImage
        do {
            image = try PNGImage(
                pngData: png,
                limits: PNGLimits(
                    maxSide: configuration.limits.maxSide,
                    maxPixels: configuration.limits.maxPixels))
        } catch {
            return "not a decodable PNG (\(error))"
        }
        guard image.width == header.width && image.height == header.height else {
            return "the PNG is \(image.width)x\(image.height) but the result says \(header.width)x\(header.height)"
        }
        return nil
    }
}
