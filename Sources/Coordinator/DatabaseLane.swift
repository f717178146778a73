import FarmModel
import Foundation
import JobStore
import Postgres

/// The coordinator's database work, on a thread of its own.
///
/// The loop that answers workers hands the lane work (`run`) and later picks up the answers (`deliver`,
/// when `wakeDescriptor` is readable), so a slow database, a lock held elsewhere or a reconnect that waits
/// on a dead host never holds up a heartbeat. Work runs one piece at a time in the order it was given
/// (a result is stored before the failure that follows it); answers run on the loop's thread. While
/// the database is unreachable every piece answers nil at once, and the lane connects again, backing off,
/// when the next piece comes.
final class DatabaseLane: @unchecked Sendable {
    /// What the lane tells the loop besides answers.
    enum Notice {
        /// Connected (again): the store's notification listener, for the loop to poll.
        case connected(WorkListener, finishedCancels: Int)
        /// The connection was lost (or could not be made) and will be tried again.
        case unavailable(Error)
        /// A statement failed (the connection is fine); its work answered nil.
        case failed(Error)
    }

    private let conninfo: String?
    /// Where the store writes result images; nil: into the database.
    private let imageDirectory: ImageDirectory?
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var pending: [(JobStore?) -> Void] = []
    private var answers: [() -> Void] = []
    private var stopped = false
    /// The lane thread's own.
    private var store: JobStore?
    private var lastAttempt: ContinuousClock.Instant?
    private var reconnectDelay = 0.0
    /// Whether the loop has been told the database is unavailable (it is told once per outage).
    private var toldUnavailable = false
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let notices: (Notice) -> Void

    /// Starts the lane's thread; `notices` runs on the loop's thread, from `deliver`.
    init(conninfo: String?, imageDirectory: ImageDirectory? = nil, notices: @escaping (Notice) -> Void) throws {
        self.conninfo = conninfo
        self.imageDirectory = imageDirectory
        self.notices = notices
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        let thread = Thread { [self] in serve() }
        thread.name = "farm.coordinator.database"
        thread.start()
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Readable when answers wait for `deliver`.
    var wakeDescriptor: Int32 { wakeRead }

    /// True while the lane holds a working connection.
    var connected: Bool { condition.withLock { connectedFlag } }
    private var connectedFlag = false

    /// Runs `work` on the lane's thread, then `then` on the loop's with its value, or nil when the database
    /// is unreachable or the statement failed. `work` must touch nothing but the store and what it captured.
    func run<T>(_ work: @escaping (JobStore) throws -> T, then: @escaping (T?) -> Void) {
        condition.withLock {
            pending.append { [self] store in
                var value: T?
                var notice: Notice?
                if let store {
                    do {
                        value = try work(store)
                    } catch  where JobStore.isConnectionFailure(error) {
                        drop()
                        toldUnavailable = true
                        notice = .unavailable(error)
                    } catch {
                        notice = .failed(error)
                    }
                }
                answer {
                    if let notice { self.notices(notice) }
                    then(value)
                }
            }
            condition.signal()
        }
    }

    /// Runs the answers that have arrived; call when `wakeDescriptor` is readable (or at any time).
    func deliver() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
        let ready = condition.withLock {
            defer { answers.removeAll() }
            return answers
        }
        for answer in ready { answer() }
    }

    /// Stops the thread after the piece it is running; work not yet started is dropped unanswered.
    func stop() {
        condition.withLock {
            stopped = true
            pending.removeAll()
            condition.signal()
        }
    }

    private func answer(_ body: @escaping () -> Void) {
        condition.withLock { answers.append(body) }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func serve() {
        while true {
            let work: (JobStore?) -> Void = condition.withLock {
                while pending.isEmpty && !stopped { condition.wait() }
                return stopped ? { _ in } : pending.removeFirst()
            }
            if condition.withLock({ stopped }) { break }
            work(connectIfDue())
        }
        store = nil
    }

    /// The store, connecting first when there is none and the backoff since the last try has passed.
    private func connectIfDue() -> JobStore? {
        if let store { return store }
        if let lastAttempt, ContinuousClock.now.seconds(since: lastAttempt) < reconnectDelay { return nil }
        lastAttempt = .now
        do {
            let store = try JobStore(conninfo: conninfo)
            store.imageDirectory = imageDirectory
            // A cancel cut short (its client killed mid-way) left queued tasks in a cancelled job.
            let finished = try store.finishInterruptedCancels()
            let listener = try WorkListener(conninfo: conninfo)
            self.store = store
            reconnectDelay = 0
            toldUnavailable = false
            condition.withLock { connectedFlag = true }
            answer { self.notices(.connected(listener, finishedCancels: finished)) }
            return store
        } catch {
            reconnectDelay = min(max(reconnectDelay * 2, 0.5), 5)
            if !toldUnavailable {
                toldUnavailable = true
                answer { self.notices(.unavailable(error)) }
            }
            return nil
        }
    }

    private func drop() {
        store = nil
        lastAttempt = .now
        reconnectDelay = 0.5
        condition.withLock { connectedFlag = false }
    }
}
