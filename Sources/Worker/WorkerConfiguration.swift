import FarmModel
import Foundation
import ZeroMQ

/// Settings of a worker daemon.
public struct WorkerConfiguration: Sendable {
    /// Coordinator endpoints, tried in order; the worker fails over to the next when one goes silent.
    public var coordinators: [String]
    /// This worker's stable name (defaults to the host name).
    public var workerID: String
    /// Tasks it takes at once.
    public var slots: Int = 1
    /// Tags announced in the introduction (`--tag`), which tasks' `require` lists match.
    public var tags: [String] = []
    /// The largest width × height it announces (what its memory allows); nil: it announces none and is given
    /// tasks up to the farm's limit.
    public var maxPixels: Int?
    /// Largest message accepted.
    public var maxMessageBytes = Limits().maxMessageBytes
    /// Seconds between resends of results the coordinator has not acknowledged.
    public var resendSeconds: Double = 5
    /// First and longest wait between introductions while no coordinator answers.
    public var reconnectBackoff: (first: Double, max: Double) = (1, 32)
    /// Seconds a coordinator may leave introductions unanswered before the worker tries the next
    /// one in its list (with more than one).
    public var failOverSeconds: Double = 8
    /// Steps between latent previews sent with progress (0: none).
    public var previewEvery = 5
    /// CURVE: the coordinator's public key and this worker's key pair. Nil: plain TCP (insecure).
    public var curve: (serverKey: String, keys: CurveKeyPair)?
    /// Where store models a task names come from and are cached (`--model-server`); nil: the worker renders only
    /// what its `--models` folder has, as before the model store.
    public var modelSource: ModelSource?

    /// Settings for a worker of `coordinator` (one or more endpoints).
    public init(coordinator: String, workerID: String? = nil) {
        self.init(coordinators: [coordinator], workerID: workerID)
    }

    /// Settings for a worker with fail-over endpoints.
    public init(coordinators: [String], workerID: String? = nil) {
        precondition(!coordinators.isEmpty, "a worker needs a coordinator endpoint")
        self.coordinators = coordinators
        self.workerID = workerID ?? ProcessInfo.processInfo.hostName
    }
}

/// Why a worker stopped on its own.
public enum WorkerError: Error, CustomStringConvertible {
    /// The coordinator refused this worker.
    case refused(String)

    public var description: String {
        switch self {
        case .refused(let reason): return "coordinator refused this worker: \(reason)"
        }
    }
}
