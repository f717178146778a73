/// An owner's share of the farm (`farm quotas`, `/v1/quotas`): quotas (nil: none) and fair-share weight, with what it
/// uses now.
public struct OwnerQuota: Codable, Sendable, Equatable {
    /// The owner (a token's owner; empty for jobs queued straight into the database).
    public var owner: String
    /// Most tasks it may have queued; a submission that would pass it is refused.
    public var maxQueued: Int?
    /// Most tasks of its jobs running at once; the rest wait.
    public var maxRunning: Int?
    /// Its share of the workers at equal priority, relative to other owners' (default 1).
    public var weight: Double
    /// Its tasks queued now (in active and paused jobs).
    public var queued: Int
    /// Its tasks running now.
    public var running: Int

    /// Makes a record.
    public init(owner: String, maxQueued: Int?, maxRunning: Int?, weight: Double, queued: Int = 0, running: Int = 0) {
        self.owner = owner
        self.maxQueued = maxQueued
        self.maxRunning = maxRunning
        self.weight = weight
        self.queued = queued
        self.running = running
    }

    enum CodingKeys: String, CodingKey {
        case owner, weight, queued, running
        case maxQueued = "max_queued"
        case maxRunning = "max_running"
    }
}
