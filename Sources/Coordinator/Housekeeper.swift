import FarmModel
import Foundation
import JobStore
import Logging

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Settings of the coordinator's housekeeping: expiry of finished jobs and job-end notifications.
public struct HousekeepingConfiguration: Sendable {
    /// Seconds between expiry runs (jobs past their `expires_after`); 0 turns expiry off.
    public var expirySeconds: Double = 60
    /// Seconds between looks at the notifications outbox when nothing is due sooner.
    public var notifyPollSeconds: Double = 1
    /// Delay after a notification's first failed attempt; doubled for each attempt after.
    public var notifyRetrySeconds: Double = 10
    /// Longest delay between attempts.
    public var notifyMaxRetrySeconds: Double = 3600
    /// How long a notification is tried before it is given up.
    public var notifyGiveUpSeconds: Double = 86_400
    /// Seconds a receiver has to answer one POST.
    public var notifyTimeoutSeconds: Double = 10

    /// The defaults.
    public init() {}

    /// Seconds to wait after the `attempts`-th failed attempt.
    public func retryDelay(afterAttempt attempts: Int) -> Double {
        min(notifyMaxRetrySeconds, notifyRetrySeconds * pow(2, Double(max(0, min(attempts - 1, 30)))))
    }
}

/// The coordinator's background work that must never hold up its loop or its database lane: removing the tasks,
/// images and events of jobs past their `expires_after` (in bounded steps, `JobStore.pruneStep`), and POSTing
/// job-end notifications from the outbox. Each runs on a thread of its own with a connection of its own, and
/// survives the database going away (it connects again, backing off).
public final class Housekeeper: @unchecked Sendable {
    private let conninfo: String?
    private let configuration: HousekeepingConfiguration
    private let logger: Logger
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var stopped = false
    private var running = 0
    private let session: URLSession

    /// Makes the housekeeper over the database at `conninfo`; `start()` starts its threads.
    public init(conninfo: String?, configuration: HousekeepingConfiguration, logger: Logger) {
        self.conninfo = conninfo
        self.configuration = configuration
        self.logger = logger
        let settings = URLSessionConfiguration.ephemeral
        settings.timeoutIntervalForRequest = configuration.notifyTimeoutSeconds
        settings.timeoutIntervalForResource = configuration.notifyTimeoutSeconds
        session = URLSession(configuration: settings)
    }

    /// Starts the expiry and notification threads.
    public func start() {
        if configuration.expirySeconds > 0 { spawn("farm.coordinator.expiry") { self.expiryLoop() } }
        spawn("farm.coordinator.notify") { self.notifyLoop() }
    }

    /// Stops both threads and waits (up to the notification timeout and a little) for them to end.
    public func stop() {
        condition.withLock {
            stopped = true
            condition.broadcast()
        }
        let deadline = Date().addingTimeInterval(configuration.notifyTimeoutSeconds + 5)
        condition.withLock {
            while running > 0 && condition.wait(until: deadline) {}
        }
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        condition.withLock { running += 1 }
        let thread = Thread {
            body()
            self.condition.withLock {
                self.running -= 1
                self.condition.broadcast()
            }
        }
        thread.name = name
        thread.start()
    }

    /// Waits `seconds` or until stopped; returns false once stopped.
    private func pause(_ seconds: Double) -> Bool {
        condition.withLock {
            let deadline = Date().addingTimeInterval(seconds)
            while !stopped && condition.wait(until: deadline) {}
            return !stopped
        }
    }

    private var isStopped: Bool { condition.withLock { stopped } }

    /// A store, or nil (logged once per outage) while the database cannot be reached.
    private func connect(_ store: inout JobStore?, _ told: inout Bool) -> JobStore? {
        if let store { return store }
        do {
            store = try JobStore(conninfo: conninfo)
            told = false
        } catch {
            if !told { logger.warning("housekeeping cannot reach the database; will retry", metadata: ["error": "\(error)"]) }
            told = true
        }
        return store
    }

    private func expiryLoop() {
        var store: JobStore?
        var told = false
        repeat {
            guard let current = connect(&store, &told) else { continue }
            do {
                // Step by step: each is one short transaction, and a stop is seen between them.
                let report = try current.prune(olderThan: nil, continuing: { !isStopped })
                if report.jobs > 0 || report.tasks > 0 {
                    logger.info(
                        "expired \(report.jobs) job(s): \(report.images) image(s), \(report.tasks) task(s), \(report.events) event(s), \(report.bytesFreed) bytes",
                        metadata: ["jobs": "\(report.jobs)", "bytes": "\(report.bytesFreed)"])
                }
            } catch {
                logger.error("expiry failed; will retry", metadata: ["error": "\(error)"])
                if JobStore.isConnectionFailure(error) { store = nil }
            }
        } while pause(configuration.expirySeconds)
    }

    private func notifyLoop() {
        var store: JobStore?
        var told = false
        var wait = configuration.notifyPollSeconds
        repeat {
            wait = configuration.notifyPollSeconds
            guard let current = connect(&store, &told) else { continue }
            do {
                let lease = configuration.notifyTimeoutSeconds + 30
                let claimed = try current.claimNotifications(limit: 16, leaseSeconds: lease, giveUpSeconds: configuration.notifyGiveUpSeconds)
                for (notification, failure) in zip(claimed, send(claimed)) {
                    if let failure {
                        let delay = configuration.retryDelay(afterAttempt: notification.attempts)
                        try current.notificationFailed(notification.id, error: failure, retryAfter: delay)
                        logger.warning(
                            "notification of job \(notification.job) failed; retrying in \(delay) s",
                            metadata: ["job": "\(notification.job)", "attempt": "\(notification.attempts)", "error": "\(failure)"])
                    } else {
                        try current.notificationDelivered(notification.id)
                    }
                }
                if !claimed.isEmpty { wait = 0 }
                if let next = try current.secondsToNextNotification() { wait = min(wait, next) }
            } catch {
                logger.error("notifications failed; will retry", metadata: ["error": "\(error)"])
                if JobStore.isConnectionFailure(error) { store = nil }
            }
        } while pause(wait)
    }

    /// POSTs each notification at once; nil for a 2xx answer, else why not.
    private func send(_ notifications: [PendingNotification]) -> [String?] {
        guard !notifications.isEmpty else { return [] }
        final class Outcomes: @unchecked Sendable {
            let lock = NSLock()
            var values: [String?]
            init(_ count: Int) { values = Array(repeating: "not answered", count: count) }
        }
        let outcomes = Outcomes(notifications.count)
        let group = DispatchGroup()
        for (index, notification) in notifications.enumerated() {
            guard let url = URL(string: notification.url) else {
                outcomes.lock.withLock { outcomes.values[index] = "not a URL" }
                continue
            }
            var request = URLRequest(url: url)
            request.httpMethod = "POST"
            request.httpBody = notification.payload
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue(String(notification.id), forHTTPHeaderField: "X-Farm-Notification")
            request.setValue(String(notification.attempts), forHTTPHeaderField: "X-Farm-Attempt")
            group.enter()
            session.dataTask(with: request) { _, response, error in
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                let outcome: String? =
                    (200..<300).contains(status) ? nil : error.map { "\($0.localizedDescription)" } ?? "HTTP \(status)"
                outcomes.lock.withLock { outcomes.values[index] = outcome }
                group.leave()
            }.resume()
        }
        _ = group.wait(timeout: .now() + configuration.notifyTimeoutSeconds + 5)
        return outcomes.lock.withLock { outcomes.values }
    }
}
