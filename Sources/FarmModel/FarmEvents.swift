import Foundation

/// One live farm event: its name (`progress`, `preview`, `done`, `failed`, `job`), its job and its JSON payload.
public struct FarmEvent: Sendable, Equatable {
    /// The event name; empty for a keep-alive comment.
    public var name: String
    /// The job it belongs to.
    public var job: Int64
    /// The payload as compact JSON text.
    public var data: String

    /// Makes an event from a JSON-ready payload (sorted keys).
    public init(name: String, job: Int64, payload: [String: Any]) {
        self.name = name
        self.job = job
        let bytes = (try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])) ?? Data("{}".utf8)
        self.data = String(decoding: bytes, as: UTF8.self)
    }

    /// A keep-alive marker (sent as the comment `: keep-alive`).
    public static let keepAlive = FarmEvent(name: "", job: 0, payload: [:])

    /// The event in server-sent-events framing.
    public var serverSentEvent: String {
        name.isEmpty ? ": keep-alive\n\n" : "event: \(name)\ndata: \(data)\n\n"
    }
}

/// A thread-safe in-process broadcaster of farm events: posting never blocks; each subscriber
/// has a bounded buffer that drops its oldest events (and counts them) when the reader is slow.
public final class FarmEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var subscribers: [UUID: FarmEventSubscription] = [:]

    /// Makes a broadcaster with no subscribers.
    public init() {}

    /// Subscribes to every event, or only those of `job`, with room for `buffer` unread events.
    public func subscribe(job: Int64? = nil, buffer: Int = 512) -> FarmEventSubscription {
        let subscription = FarmEventSubscription(job: job, buffer: buffer, owner: self)
        lock.withLock { subscribers[subscription.id] = subscription }
        return subscription
    }

    /// Number of live subscribers.
    public var subscriberCount: Int { lock.withLock { subscribers.count } }

    /// Delivers `event` to every matching subscriber without waiting.
    public func post(_ event: FarmEvent) {
        let targets = lock.withLock { Array(subscribers.values) }
        for subscriber in targets where subscriber.job == nil || subscriber.job == event.job {
            subscriber.deliver(event)
        }
    }

    /// Forgets a subscriber.
    func remove(_ id: UUID) {
        _ = lock.withLock { subscribers.removeValue(forKey: id) }
    }
}

/// One subscriber's bounded stream of events; `cancel()` (or dropping the stream) unsubscribes.
public final class FarmEventSubscription: @unchecked Sendable {
    /// The events, oldest first.
    public let events: AsyncStream<FarmEvent>
    /// The job it follows, or nil for all.
    public let job: Int64?
    let id = UUID()
    private let continuation: AsyncStream<FarmEvent>.Continuation
    private let lock = NSLock()
    private var droppedCount = 0

    init(job: Int64?, buffer: Int, owner: FarmEvents) {
        self.job = job
        (events, continuation) = AsyncStream.makeStream(of: FarmEvent.self, bufferingPolicy: .bufferingNewest(max(1, buffer)))
        let id = self.id
        continuation.onTermination = { [weak owner] _ in owner?.remove(id) }
    }

    /// Events dropped so far because the reader fell behind.
    public var dropped: Int { lock.withLock { droppedCount } }

    /// Queues an event, dropping the oldest one when the buffer is full.
    func deliver(_ event: FarmEvent) {
        if case .dropped = continuation.yield(event) { lock.withLock { droppedCount += 1 } }
    }

    /// Queues a keep-alive marker.
    public func keepAlive() { deliver(.keepAlive) }

    /// Ends the stream and unsubscribes.
    public func cancel() { continuation.finish() }
}
