import Foundation

/// What a live event says: the fields of its JSON payload; those that are nil are absent from it.
public struct FarmEventPayload: Codable, Sendable, Equatable {
    /// The task it is about.
    public var task: Int64?
    /// The task's job.
    public var job: Int64?
    /// The attempt it is about.
    public var attempt: Int?
    /// The step reached (`progress`, `preview`).
    public var step: Int?
    /// Steps in all (`progress`).
    public var total: Int?
    /// The worker that reported it (`progress`).
    public var worker: String?
    /// The seed the image was drawn with (`done`).
    public var seed: UInt64?
    /// The failure's kind, `input` or `host` (`failed`).
    public var kind: String?
    /// The failure's message (`failed`).
    public var message: String?
    /// The preview PNG in base64 (`preview`).
    public var png: String?

    /// Makes a payload; fields not given are absent.
    public init(
        task: Int64? = nil, job: Int64? = nil, attempt: Int? = nil, step: Int? = nil, total: Int? = nil, worker: String? = nil,
        seed: UInt64? = nil, kind: String? = nil, message: String? = nil, png: String? = nil
    ) {
        self.task = task
        self.job = job
        self.attempt = attempt
        self.step = step
        self.total = total
        self.worker = worker
        self.seed = seed
        self.kind = kind
        self.message = message
        self.png = png
    }
}

/// One live event: its name (`progress`, `preview`, `done`, `failed`, `job`), its job and its payload (immutable, so
/// that `data` always is the payload's JSON).
public struct FarmEvent: Codable, Sendable, Equatable {
    /// The event name; empty for a keep-alive comment.
    public let name: String
    /// The job it belongs to.
    public let job: Int64
    /// What it says.
    public let payload: FarmEventPayload
    /// The payload as compact JSON text (sorted keys), as the event stream sends it.
    public let data: String

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    /// Makes an event.
    public init(name: String, job: Int64, payload: FarmEventPayload) {
        self.name = name
        self.job = job
        self.payload = payload
        let bytes = (try? Self.encoder.encode(payload)) ?? Data("{}".utf8)
        self.data = String(decoding: bytes, as: UTF8.self)
    }

    enum CodingKeys: String, CodingKey {
        case name, job, payload
    }

    /// Decodes an event (its JSON text is made again from the payload).
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name), job: try container.decode(Int64.self, forKey: .job),
            payload: try container.decode(FarmEventPayload.self, forKey: .payload))
    }

    /// A keep-alive marker (sent as the comment `: keep-alive`).
    public static let keepAlive = FarmEvent(name: "", job: 0, payload: .init())

    /// The event in server-sent-events framing.
    public var serverSentEvent: String {
        name.isEmpty ? ": keep-alive\n\n" : "event: \(name)\ndata: \(data)\n\n"
    }
}
