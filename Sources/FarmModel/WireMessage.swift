import Foundation

/// The coordinator↔worker protocol: each message is a multipart ZeroMQ message
/// of [type, JSON body] with PNG bytes as a third frame where a message carries
/// an image. `docs/PROTOCOL.md` describes every field.
public enum WireMessage: Equatable, Sendable {
    /// The protocol version; a peer with another version is refused with a clear error.
    public static let protocolVersion = 1

    /// Worker → coordinator: who I am and how much work I can take.
    case hello(Hello)
    /// Coordinator → worker: accepted; heartbeat every `heartbeatSeconds`.
    case welcome(Welcome)
    /// Coordinator → worker: refused, with a code; the worker introduces itself again after `unknownWorker`
    /// and stops, printing the reason, on any other.
    case refused(Refusal)
    /// Either way: I am alive (and, from a worker, its state, free slots and loaded model).
    case heartbeat(Heartbeat)
    /// Coordinator → worker: render this task.
    case assign(Assignment)
    /// Worker → coordinator: step `step` of `total` for a task's attempt.
    case progress(Progress)
    /// Worker → coordinator: the finished image of a task's attempt.
    case result(ResultHeader, png: Data)
    /// Worker → coordinator: the attempt failed.
    case failed(Failure)
    /// Coordinator → worker: the result or failure of this attempt is stored; forget it.
    case ack(taskID: Int64, attempt: Int)
    /// Coordinator → worker: stop working on this task (its job was cancelled).
    case cancel(taskID: Int64)
    /// Coordinator → worker: finish what you hold, take nothing new.
    case drain
    /// Coordinator → worker: a stored input image (sent once per worker, before the first ASSIGN that needs it).
    case blob(sha256: String, data: Data)
    /// Worker → coordinator: a low-resolution preview (PNG) of a task's attempt at `step`.
    case preview(Progress, png: Data)

    /// A heartbeat's body.
    public struct Heartbeat: Codable, Equatable, Sendable {
        /// Slots free for new tasks (0 from the coordinator).
        public var freeSlots: Int
        /// `idle`, `busy` or `draining` (workers only).
        public var state: String?
        /// The model the worker has loaded now, for model affinity.
        public var loadedModel: String?
        /// Seconds the worker's latest model load took (workers only; for metrics).
        public var modelLoadSeconds: Double?
        /// SHA-256s of the store models in the worker's cache now (workers with a model cache only), so that the
        /// coordinator learns of each fetch and eviction.
        public var modelHashes: [String]?

        /// Makes a heartbeat.
        public init(
            freeSlots: Int, state: String? = nil, loadedModel: String? = nil, modelLoadSeconds: Double? = nil, modelHashes: [String]? = nil
        ) {
            self.modelHashes = modelHashes
            self.freeSlots = freeSlots
            self.state = state
            self.loadedModel = loadedModel
            self.modelLoadSeconds = modelLoadSeconds
        }
    }

    /// The coordinator's answer to a hello.
    public struct Welcome: Codable, Equatable, Sendable {
        /// How often each side sends a heartbeat.
        public var heartbeatSeconds: Double
        /// Silence after which a peer is declared lost.
        public var timeoutSeconds: Double

        /// Makes a welcome.
        public init(heartbeatSeconds: Double, timeoutSeconds: Double) {
            self.heartbeatSeconds = heartbeatSeconds
            self.timeoutSeconds = timeoutSeconds
        }
    }

    /// One task handed to a worker.
    public struct Assignment: Codable, Equatable, Sendable {
        /// The task's id in the job store.
        public var taskID: Int64
        /// Which attempt this is; results of other attempts are dropped.
        public var attempt: Int
        /// What to render.
        public var parameters: TaskParameters
        /// The task's job, for the worker's log (absent from coordinators before it was added).
        public var jobID: Int64?

        /// Makes an assignment.
        public init(taskID: Int64, attempt: Int, parameters: TaskParameters, jobID: Int64? = nil) {
            self.taskID = taskID
            self.attempt = attempt
            self.parameters = parameters
            self.jobID = jobID
        }
    }

    /// Progress of one attempt.
    public struct Progress: Codable, Equatable, Sendable {
        /// The task's id.
        public var taskID: Int64
        /// The attempt the progress belongs to.
        public var attempt: Int
        /// Steps done.
        public var step: Int
        /// Steps in all.
        public var total: Int
        /// Steps per second so far.
        public var itemsPerSecond: Double?

        /// Makes a progress report.
        public init(taskID: Int64, attempt: Int, step: Int, total: Int, itemsPerSecond: Double? = nil) {
            self.taskID = taskID
            self.attempt = attempt
            self.step = step
            self.total = total
            self.itemsPerSecond = itemsPerSecond
        }
    }

    /// What travels with a result's PNG.
    public struct ResultHeader: Codable, Equatable, Sendable {
        /// The task's id.
        public var taskID: Int64
        /// The attempt that made the image.
        public var attempt: Int
        /// Image width in pixels.
        public var width: Int
        /// Image height in pixels.
        public var height: Int
        /// The seed used.
        public var seed: UInt64

        /// Makes a result header.
        public init(taskID: Int64, attempt: Int, width: Int, height: Int, seed: UInt64) {
            self.taskID = taskID
            self.attempt = attempt
            self.width = width
            self.height = height
            self.seed = seed
        }
    }

    /// A failed attempt.
    public struct Failure: Codable, Equatable, Sendable {
        /// The task's id.
        public var taskID: Int64
        /// The attempt that failed.
        public var attempt: Int
        /// Input (do not retry) or host (retry elsewhere).
        public var kind: FailureKind
        /// What went wrong, for the user.
        public var message: String

        /// Makes a failure report.
        public init(taskID: Int64, attempt: Int, kind: FailureKind, message: String) {
            self.taskID = taskID
            self.attempt = attempt
            self.kind = kind
            self.message = message
        }
    }
}

/// Why bytes received from a peer are not a valid message; the daemon logs and drops them.
public struct WireError: Error, Equatable, CustomStringConvertible {
    /// What was wrong.
    public var message: String

    /// Makes a wire error.
    public init(_ message: String) { self.message = message }

    public var description: String { "malformed message: \(message)" }
}

/// Why a coordinator refused a worker.
public struct Refusal: Codable, Equatable, Sendable {
    /// What kind of refusal.
    public enum Code: String, Codable, Sendable {
        /// The coordinator does not know this connection (it restarted): send HELLO again.
        case unknownWorker = "unknown_worker"
        /// The worker speaks another protocol version.
        case protocolVersion = "protocol_version"
        /// A live connection already uses this worker name.
        case nameInUse = "name_in_use"
        /// The name belongs to another CURVE key.
        case nameBoundToOtherKey = "name_bound_to_other_key"
        /// A HELLO field is out of range (slots, models, names); the reason names it.
        case badHello = "bad_hello"
    }

    /// What kind of refusal.
    public var code: Code
    /// One line for the worker to print.
    public var reason: String

    /// Makes a refusal.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        reason = try container.decode(String.self, forKey: .reason)
        // Coordinators before the codes sent the reason alone.
        code =
            try container.decodeIfPresent(Code.self, forKey: .code)
            ?? (reason.hasPrefix("unknown worker") ? .unknownWorker : .badHello)
    }
}

private struct Ack: Codable {
    var taskID: Int64
    var attempt: Int
}
private struct TaskReference: Codable { var taskID: Int64 }
private struct Nothing: Codable {}
private struct BlobHeader: Codable { var sha256: String }

extension WireMessage {
    /// The message's type name, the first frame on the wire.
    public var typeName: String {
        switch self {
        case .hello: return "HELLO"
        case .welcome: return "WELCOME"
        case .refused: return "REFUSED"
        case .heartbeat: return "HEARTBEAT"
        case .assign: return "ASSIGN"
        case .progress: return "PROGRESS"
        case .result: return "RESULT"
        case .failed: return "FAILED"
        case .ack: return "ACK"
        case .cancel: return "CANCEL"
        case .drain: return "DRAIN"
        case .blob: return "BLOB"
        case .preview: return "PREVIEW"
        }
    }

    /// The message as ZeroMQ frames.
    public func frames() -> [Data] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func json<T: Encodable>(_ value: T) -> Data {
            // Encoding these plain structs cannot fail.
            (try? encoder.encode(value)) ?? Data("{}".utf8)
        }
        let type = Data(typeName.utf8)
        switch self {
        case .hello(let body): return [type, json(body)]
        case .welcome(let body): return [type, json(body)]
        case .refused(let refusal): return [type, json(refusal)]
        case .heartbeat(let body): return [type, json(body)]
        case .assign(let body): return [type, json(body)]
        case .progress(let body): return [type, json(body)]
        case .result(let header, let png): return [type, json(header), png]
        case .failed(let body): return [type, json(body)]
        case .ack(let task, let attempt): return [type, json(Ack(taskID: task, attempt: attempt))]
        case .cancel(let task): return [type, json(TaskReference(taskID: task))]
        case .drain: return [type, json(Nothing())]
        case .blob(let hash, let data): return [type, json(BlobHeader(sha256: hash)), data]
        case .preview(let body, let png): return [type, json(body), png]
        }
    }

    /// Parses frames received from a peer; anything unexpected is a `WireError`, never a crash.
    public init(frames: [Data], maxBytes: Int = Limits().maxMessageBytes) throws {
        let size = frames.reduce(0) { $0 + $1.count }
        guard size <= maxBytes else { throw WireError("message of \(size) bytes exceeds the \(maxBytes)-byte cap") }
        guard frames.count >= 2, let type = String(data: frames[0], encoding: .utf8) else {
            throw WireError("expected [type, body] frames, got \(frames.count) frame(s)")
        }
        let decoder = JSONDecoder()
        func body<T: Decodable>(_: T.Type) throws -> T {
            do {
                return try decoder.decode(T.self, from: frames[1])
            } catch {
                throw WireError("\(type) body does not parse: \(error)")
            }
        }
        func expectFrames(_ count: Int) throws {
            guard frames.count == count else {
                throw WireError("\(type) needs \(count) frames, got \(frames.count)")
            }
        }
        switch type {
        case "HELLO":
            try expectFrames(2)
            self = .hello(try body(Hello.self))
        case "WELCOME":
            try expectFrames(2)
            self = .welcome(try body(Welcome.self))
        case "REFUSED":
            try expectFrames(2)
            self = .refused(try body(Refusal.self))
        case "HEARTBEAT":
            try expectFrames(2)
            self = .heartbeat(try body(Heartbeat.self))
        case "ASSIGN":
            try expectFrames(2)
            self = .assign(try body(Assignment.self))
        case "PROGRESS":
            try expectFrames(2)
            self = .progress(try body(Progress.self))
        case "RESULT":
            try expectFrames(3)
            self = .result(try body(ResultHeader.self), png: frames[2])
        case "FAILED":
            try expectFrames(2)
            self = .failed(try body(Failure.self))
        case "ACK":
            try expectFrames(2)
            let ack = try body(Ack.self)
            self = .ack(taskID: ack.taskID, attempt: ack.attempt)
        case "CANCEL":
            try expectFrames(2)
            self = .cancel(taskID: try body(TaskReference.self).taskID)
        case "DRAIN":
            try expectFrames(2)
            _ = try body(Nothing.self)
            self = .drain
        case "PREVIEW":
            try expectFrames(3)
            self = .preview(try body(Progress.self), png: frames[2])
        case "BLOB":
            try expectFrames(3)
            let hash = try body(BlobHeader.self).sha256
            guard SHA256.hex(of: frames[2]) == hash else { throw WireError("BLOB bytes do not match their SHA-256 \(hash.prefix(16))…") }
            self = .blob(sha256: hash, data: frames[2])
        default:
            throw WireError("unknown message type \"\(type.prefix(32))\"")
        }
    }
}

extension WireMessage.Hello {
    /// What is wrong with this hello, in one line naming the field, or nil when it is within `limits`: names of
    /// 1…`maxNameBytes` bytes without control characters, 1…`maxWorkerSlots` slots, at most `maxWorkerModels`
    /// models and as many VAEs and LoRAs, a pixel limit of 1…`Int32.max`, at most `maxWorkerSlots` × 4 tasks held.
    public func problem(limits: Limits = Limits()) -> String? {
        func badName(_ value: String) -> Bool {
            value.isEmpty || value.utf8.count > limits.maxNameBytes || value.unicodeScalars.contains { $0.properties.generalCategory == .control }
        }
        if badName(workerID) { return "worker name must be 1…\(limits.maxNameBytes) bytes without control characters" }
        if badName(host) { return "host must be 1…\(limits.maxNameBytes) bytes without control characters" }
        if slots < 1 || slots > limits.maxWorkerSlots { return "slots must be 1…\(limits.maxWorkerSlots), got \(slots)" }
        if models.count > limits.maxWorkerModels { return "at most \(limits.maxWorkerModels) models, got \(models.count)" }
        if let model = models.first(where: badName) {
            return "model name \"\(model.prefix(40))\" must be 1…\(limits.maxNameBytes) bytes without control characters"
        }
        if let vaes, vaes.count > limits.maxWorkerModels { return "at most \(limits.maxWorkerModels) VAEs, got \(vaes.count)" }
        if let vae = vaes?.first(where: badName) {
            return "VAE name \"\(vae.prefix(40))\" must be 1…\(limits.maxNameBytes) bytes without control characters"
        }
        if let loras, loras.count > limits.maxWorkerModels { return "at most \(limits.maxWorkerModels) LoRAs, got \(loras.count)" }
        if let lora = loras?.first(where: badName) {
            return "LoRA name \"\(lora.prefix(40))\" must be 1…\(limits.maxNameBytes) bytes without control characters"
        }
        if let tags, tags.count > limits.maxWorkerModels { return "at most \(limits.maxWorkerModels) tags, got \(tags.count)" }
        if let modelHashes, modelHashes.count > limits.maxWorkerModels || !modelHashes.allSatisfy(TaskParameters.isStoredImageName) {
            return "model hashes must be at most \(limits.maxWorkerModels) SHA-256s (64 lowercase hex digits)"
        }
        if let tag = tags?.first(where: badName) {
            return "tag \"\(tag.prefix(40))\" must be 1…\(limits.maxNameBytes) bytes without control characters"
        }
        // The farm records the limit as a 32-bit integer.
        if let maxPixels, maxPixels < 1 || maxPixels > Int(Int32.max) { return "max pixels must be 1…\(Int32.max), got \(maxPixels)" }
        if let activeTasks, activeTasks.count > limits.maxWorkerSlots * 4 {
            return "holds \(activeTasks.count) tasks; at most \(limits.maxWorkerSlots * 4)"
        }
        if let device,
            device.model.utf8.count > 1_000 || (device.blasCore?.utf8.count ?? 0) > limits.maxNameBytes
                || (device.accelerator?.utf8.count ?? 0) > 1_000
        {
            return "device description too long"
        }
        return nil
    }
}
