import FarmModel
import Foundation
import Postgres

/// A job-end notification claimed for sending.
public struct PendingNotification: Sendable {
    /// The outbox row's id, which the receiver also gets (`X-Farm-Notification`) to tell a resend from a new end.
    public var id: Int64
    /// The job it tells of.
    public var job: Int64
    /// Where to POST it.
    public var url: String
    /// The JSON body (`JobNotification`).
    public var payload: Data
    /// Attempts so far, this one included.
    public var attempts: Int
}

/// The notifications outbox (Migrations/0012_retention.sql): a trigger queues one row when a job with a `notify` URL
/// ends, in the same transaction; senders claim due rows with FOR UPDATE SKIP LOCKED, so that two coordinators never
/// send one row at once, and mark them delivered on a 2xx answer.
extension JobStore {
    /// Claims up to `limit` due notifications: each is due again after `leaseSeconds` unless marked delivered or
    /// failed first (a sender that dies mid-send leaves it to the next). Rows older than `giveUpSeconds` are given up.
    public func claimNotifications(limit: Int, leaseSeconds: Double, giveUpSeconds: Double) throws -> [PendingNotification] {
        try connection.query(
            """
            UPDATE notifications SET given_up_at = now()
            WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_at <= now()
              AND created_at < now() - make_interval(secs => $1::float8)
            """, [giveUpSeconds])
        return try connection.query(
            """
            UPDATE notifications n SET attempts = n.attempts + 1, next_at = now() + make_interval(secs => $2::float8)
            FROM (SELECT id FROM notifications WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_at <= now()
                  ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) d
            WHERE n.id = d.id
            RETURNING n.id, n.job_id, n.url, n.payload::text AS payload, n.attempts
            """, [limit, leaseSeconds]
        ).rows.map { row in
            PendingNotification(
                id: try row.decode("id"), job: try row.decode("job_id"), url: try row.decode("url"),
                payload: Data(try row.decode("payload", as: String.self).utf8), attempts: try row.decode("attempts"))
        }
    }

    /// Marks a notification delivered (the receiver answered 2xx); false when it already was.
    @discardableResult
    public func notificationDelivered(_ id: Int64) throws -> Bool {
        try connection.query(
            "UPDATE notifications SET delivered_at = now(), last_error = NULL WHERE id = $1 AND delivered_at IS NULL", [id]
        ).affectedRows == 1
    }

    /// Records a failed attempt; the notification is due again in `retryAfter` seconds.
    public func notificationFailed(_ id: Int64, error: String, retryAfter: Double) throws {
        try connection.query(
            """
            UPDATE notifications SET next_at = now() + make_interval(secs => $2::float8), last_error = $3
            WHERE id = $1 AND delivered_at IS NULL
            """, [id, retryAfter, String(error.prefix(500))])
    }

    /// Seconds until the next notification is due (0 when one is due now); nil when none waits.
    public func secondsToNextNotification() throws -> Double? {
        // Not greatest(0, …) in SQL: it ignores a NULL (no row) and would answer 0.
        try connection.query(
            """
            SELECT extract(epoch FROM min(next_at) - now())::float8 AS s FROM notifications
            WHERE delivered_at IS NULL AND given_up_at IS NULL
            """
        ).single().decodeIfPresent("s", as: Double.self).map { max(0, $0) }
    }
}
