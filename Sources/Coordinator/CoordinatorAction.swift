import FarmModel
import Foundation
import JobStore
import Logging

/// What the coordinator's state machine asks its daemon to do; the daemon owns the sockets, the database lane,
/// the event stream, the logger and the metrics, and does nothing of its own accord.
public enum CoordinatorAction {
    /// Send a message to one connection.
    case send(WireMessage, to: Data)
    /// Run a statement on the database lane and report its answer with `CoordinatorState.answered`.
    case query(DatabaseRequest)
    /// Answer the CURVE handshake the state machine was last given (see `CoordinatorState.handshake`).
    case answerHandshake(allowed: Bool)
    /// Post a live event for HTTP watchers.
    case post(FarmEvent)
    /// Write a log line.
    case log(Logger.Level, String, Logger.Metadata)
    /// Update a metric.
    case metric(CoordinatorMetric)
}

/// A piece of database work the state machine asks for; what each answers is the `DatabaseAnswer` case of the
/// same name.
public enum DatabaseRequest {
    /// Whether a CURVE key is on the allow-list; for the pending handshake, or to re-check a live connection.
    case isKeyAllowed(String, forHandshake: Bool)
    /// Record a worker's HELLO (answers its operator state, or nil when its name belongs to another key).
    case registerWorker(WireMessage.Hello, publicKey: String?, routingID: Data)
    /// Note a heartbeat.
    case touchWorker(String, loadedModel: String?, modelHashes: [String]? = nil)
    /// Which job a task belongs to.
    case jobOfTask(Int64)
    /// Lease tasks for a worker with free slots, with the input images it has not been sent.
    case claim(ClaimRequest)
    /// Put back tasks claimed for a worker that left before they were sent.
    case releaseUnsent([Int64], workerID: String)
    /// Store a result.
    case complete(WireMessage.ResultHeader, png: Data, workerID: String, routingID: Data)
    /// Store a failed attempt.
    case fail(WireMessage.Failure, workerID: String, routingID: Data)
    /// Write the latest progress of several tasks; `started` are the tasks written for the first time.
    case progress([PendingProgress], started: Set<Int64>, leaseSeconds: Double)
    /// Requeue the tasks of a lost worker.
    case requeueWorker(String)
    /// The once-a-heartbeat reads: a round trip, cancelled tasks among `held`, operator states of `workers`,
    /// expired leases requeued.
    case upkeep(held: [Int64], workers: [String])
}

/// The database's answer to a `DatabaseRequest`; the daemon reports nil instead when the database was unreachable
/// or the statement failed.
public enum DatabaseAnswer {
    /// `isKeyAllowed`.
    case keyAllowed(Bool)
    /// `registerWorker`: the operator state (online, draining, cordoned), or nil for a name bound to another key.
    case registered(operatorState: WorkerStatus?)
    /// `jobOfTask`: nil for a task the database does not know.
    case job(Int64?)
    /// `claim`.
    case claimed(Claimed)
    /// `complete` and `fail`.
    case reported(ReportOutcome)
    /// `requeueWorker` and `releaseUnsent`: how many tasks went back to the queue.
    case requeued(Int)
    /// `upkeep`.
    case upkeep(Upkeep)
    /// `touchWorker` and `progress`.
    case done
}

/// One claim for one worker.
public struct ClaimRequest {
    /// The connection the tasks go to.
    public var routingID: Data
    /// The worker's name (the lease owner).
    public var workerID: String
    /// What it can run.
    public var capabilities: WorkerCapabilities
    /// Its free slots.
    public var limit: Int
    /// Lease length.
    public var leaseSeconds: Double
    /// The model it has loaded, preferred so it need not load another.
    public var preferredModel: String?
    /// Input images it already holds.
    public var sentBlobs: Set<String>
}

/// What one claim brought: the assignments (with how long each task waited) and the input images they need.
public struct Claimed {
    /// The tasks leased, with the seconds each waited to become dispatchable.
    public var assignments: [(assignment: WireMessage.Assignment, waited: Double)]
    /// Input images the worker has not been sent, by SHA-256.
    public var blobs: [(hash: String, data: Data)]

    /// Makes a claim's answer.
    public init(assignments: [(assignment: WireMessage.Assignment, waited: Double)], blobs: [(hash: String, data: Data)] = []) {
        self.assignments = assignments
        self.blobs = blobs
    }
}

/// What one sweep read and did in the database.
public struct Upkeep {
    /// Seconds of a `SELECT 1`.
    public var roundTrip: Double
    /// Tasks held by connected workers that were cancelled.
    public var cancelled: [Int64]
    /// Operator states (online, draining, cordoned) by worker name.
    public var states: [String: WorkerStatus]
    /// Tasks whose lease expired, requeued.
    public var expired: Int

    /// Makes an upkeep answer.
    public init(roundTrip: Double = 0, cancelled: [Int64] = [], states: [String: WorkerStatus] = [:], expired: Int = 0) {
        self.roundTrip = roundTrip
        self.cancelled = cancelled
        self.states = states
        self.expired = expired
    }
}

/// A task's latest progress, waiting to be written.
public struct PendingProgress {
    /// The report.
    public var report: WireMessage.Progress
    /// The worker that sent it (the lease owner the write checks).
    public var workerID: String
}

/// A metric the state machine updates.
public enum CoordinatorMetric: Equatable {
    /// A worker's model load time.
    case workerModelLoad(worker: String, seconds: Double)
    /// A worker's rendering speed.
    case workerSpeed(worker: String, stepsPerSecond: Double)
    /// How long a task handed out had waited.
    case dispatchLatency(seconds: Double)
    /// An image stored.
    case imageStored
    /// Tasks sent back to the queue, and why.
    case requeued(Int, reason: String)
    /// Leases that ran out.
    case leaseExpiries(Int)
    /// A sweep ran: the connected workers now (the images-per-second gauge is updated with it).
    case swept(connectedWorkers: Int)
    /// The database's round trip.
    case databaseRoundTrip(seconds: Double)
}
