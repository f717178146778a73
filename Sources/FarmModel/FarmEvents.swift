import Foundation

/// A thread-safe in-process broadcaster of farm events: posting never blocks; each subscriber
/// has a bounded buffer that drops events (and counts them) when the reader is slow.
public final class FarmEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var subscribers: [UUID: FarmEventSubscription] = [:]

    /// Unread bytes one subscriber may hold: with 100 readers that never read, 100 × this is the most the
    /// event streams can take, whatever size the previews are.
    public static let subscriberBudgetBytes = 2 << 20

    /// Makes a broadcaster with no subscribers.
    public init() {}

    /// Subscribes to every event, or only those of `job`, with room for `buffer` unread events of at most
    /// `budgetBytes` in all.
    public func subscribe(job: Int64? = nil, buffer: Int = 512, budgetBytes: Int = FarmEvents.subscriberBudgetBytes) -> FarmEventSubscription {
        let subscription = FarmEventSubscription(job: job, buffer: buffer, budgetBytes: budgetBytes, owner: self)
        lock.withLock { subscribers[subscription.id] = subscription }
        return subscription
    }

    /// Number of live subscribers.
    public var subscriberCount: Int { lock.withLock { subscribers.count } }

    /// Unread bytes held for all subscribers together.
    public var bufferedBytes: Int { lock.withLock { Array(subscribers.values) }.reduce(0) { $0 + $1.bufferedBytes } }

    /// Delivers `event` to every matching subscriber without waiting.
    public func post(_ event: FarmEvent) {
        let targets = lock.withLock { Array(subscribers.values) }
        for subscriber in targets where subscriber.job == nil || subscriber.job == event.job {
            subscriber.deliver(event)
        }
    }

    /// Ends every subscription (their streams finish).
    public func cancelAll() {
        for subscriber in lock.withLock({ Array(subscribers.values) }) { subscriber.cancel() }
    }

    /// Forgets a subscriber.
    func remove(_ id: UUID) {
        _ = lock.withLock { subscribers.removeValue(forKey: id) }
    }
}

/// One subscriber's bounded stream of events; `cancel()` (or dropping the stream) unsubscribes.
///
/// The buffer is bounded by count and by bytes: when an event does not fit, previews (the large, replaceable
/// events) are dropped first, oldest first, then the oldest events of any kind.
public final class FarmEventSubscription: @unchecked Sendable {
    /// The events, oldest first.
    public private(set) var events: AsyncStream<FarmEvent>!
    /// The job it follows, or nil for all.
    public let job: Int64?
    let id = UUID()
    private let lock = NSLock()
    private let buffer: Int
    private let budgetBytes: Int
    private var queue: [FarmEvent] = []
    private var queuedBytes = 0
    private var droppedCount = 0
    private var finished = false
    private var waiting: CheckedContinuation<FarmEvent?, Never>?
    private weak var owner: FarmEvents?

    init(job: Int64?, buffer: Int, budgetBytes: Int, owner: FarmEvents) {
        self.job = job
        self.buffer = max(1, buffer)
        self.budgetBytes = max(1, budgetBytes)
        self.owner = owner
        events = AsyncStream(unfolding: { [weak self] in await self?.next() }, onCancel: { [weak self] in self?.cancel() })
    }

    /// Events dropped so far because the reader fell behind.
    public var dropped: Int { lock.withLock { droppedCount } }

    /// Unread bytes held now.
    public var bufferedBytes: Int { lock.withLock { queuedBytes } }

    private static func size(_ event: FarmEvent) -> Int { event.data.utf8.count + event.name.utf8.count + 16 }

    /// Queues an event, making room as the type's doc says.
    func deliver(_ event: FarmEvent) {
        let waiter: CheckedContinuation<FarmEvent?, Never>? = lock.withLock {
            guard !finished else { return nil }
            if let waiting {
                self.waiting = nil
                return waiting
            }
            let size = Self.size(event)
            guard size <= budgetBytes else {
                droppedCount += 1
                return nil
            }
            while queue.count >= buffer || queuedBytes + size > budgetBytes {
                let victim = queue.firstIndex { $0.name == "preview" } ?? 0
                queuedBytes -= Self.size(queue.remove(at: victim))
                droppedCount += 1
            }
            queue.append(event)
            queuedBytes += size
            return nil
        }
        waiter?.resume(returning: event)
    }

    /// The next event, waiting for one; nil once cancelled.
    private func next() async -> FarmEvent? {
        await withCheckedContinuation { (continuation: CheckedContinuation<FarmEvent?, Never>) in
            let ready: FarmEvent?? = lock.withLock {
                if !queue.isEmpty {
                    let event = queue.removeFirst()
                    queuedBytes -= Self.size(event)
                    return .some(event)
                }
                if finished { return .some(nil) }
                waiting = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Queues a keep-alive marker.
    public func keepAlive() { deliver(.keepAlive) }

    /// Ends the stream and unsubscribes.
    public func cancel() {
        let waiter: CheckedContinuation<FarmEvent?, Never>? = lock.withLock {
            finished = true
            queue.removeAll()
            queuedBytes = 0
            defer { waiting = nil }
            return waiting
        }
        waiter?.resume(returning: nil)
        owner?.remove(id)
    }
}
