import Foundation

/// A length of time as users write it for retention: `30d`, `12h`, `90m`, `45s`, `2w`, or plain seconds (`3600`).
public enum RetentionPeriod {
    /// The longest period accepted (ten years), so that no date arithmetic overflows.
    public static let maxSeconds = 10 * 366 * 86_400.0

    /// Seconds of `text`; a `ValidationFailure` naming `field` when it is not a positive period.
    public static func seconds(_ text: String, field: String) throws -> Double {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var number = Substring(trimmed)
        var unit = 1.0
        if let last = trimmed.last, let factor = units[last] {
            number = trimmed.dropLast()
            unit = factor
        }
        guard let value = Double(number), value.isFinite, value > 0, value * unit <= maxSeconds else {
            throw ValidationFailure(
                field: field,
                message: "must be a positive period such as 30d, 12h, 90m, 45s or seconds (at most ten years), got \"\(text.prefix(40))\"")
        }
        return value * unit
    }
}

/// What one prune removed and the space it freed: `farm prune --json` and `POST /v1/prune`.
public struct PruneReport: Codable, Sendable, Equatable {
    /// Jobs whose tasks, images and events were removed (their rows stay, marked pruned).
    public var jobs: Int = 0
    /// Images removed.
    public var images: Int = 0
    /// Tasks removed.
    public var tasks: Int = 0
    /// Events removed.
    public var events: Int = 0
    /// PNG bytes removed from the database.
    public var imageBytes: Int64 = 0
    /// Bytes of image files removed from the image directory.
    public var fileBytes: Int64 = 0
    /// Image files removed (a file that another image still names is kept).
    public var files: Int = 0
    /// Bytes of the removed task and event rows, as PostgreSQL stores them.
    public var rowBytes: Int64 = 0
    /// The images, tasks and events tables (with their TOAST and indexes) before the prune, when it vacuumed.
    public var relationBytesBefore: Int64?
    /// The same after the prune and its VACUUM: PostgreSQL hands space back to the system only when vacuumed.
    public var relationBytesAfter: Int64?

    /// Every byte the removed data took: PNGs in the database, files and rows.
    public var bytesFreed: Int64 { imageBytes + fileBytes + rowBytes }

    /// An empty report.
    public init() {}

    /// Adds another batch's figures (relation sizes are the whole prune's, set once).
    public mutating func add(_ other: PruneReport) {
        jobs += other.jobs
        images += other.images
        tasks += other.tasks
        events += other.events
        imageBytes += other.imageBytes
        fileBytes += other.fileBytes
        files += other.files
        rowBytes += other.rowBytes
    }

    enum CodingKeys: String, CodingKey {
        case jobs, images, tasks, events, files
        case imageBytes = "image_bytes"
        case fileBytes = "file_bytes"
        case rowBytes = "row_bytes"
        case relationBytesBefore = "relation_bytes_before"
        case relationBytesAfter = "relation_bytes_after"
        case bytesFreed = "bytes_freed"
    }

    /// Decodes a report; `bytes_freed` is derived, so it is not read.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jobs = try container.decode(Int.self, forKey: .jobs)
        images = try container.decode(Int.self, forKey: .images)
        tasks = try container.decode(Int.self, forKey: .tasks)
        events = try container.decode(Int.self, forKey: .events)
        files = try container.decodeIfPresent(Int.self, forKey: .files) ?? 0
        imageBytes = try container.decode(Int64.self, forKey: .imageBytes)
        fileBytes = try container.decodeIfPresent(Int64.self, forKey: .fileBytes) ?? 0
        rowBytes = try container.decodeIfPresent(Int64.self, forKey: .rowBytes) ?? 0
        relationBytesBefore = try container.decodeIfPresent(Int64.self, forKey: .relationBytesBefore)
        relationBytesAfter = try container.decodeIfPresent(Int64.self, forKey: .relationBytesAfter)
    }

    /// Encodes the report with its derived `bytes_freed`.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(jobs, forKey: .jobs)
        try container.encode(images, forKey: .images)
        try container.encode(tasks, forKey: .tasks)
        try container.encode(events, forKey: .events)
        try container.encode(files, forKey: .files)
        try container.encode(imageBytes, forKey: .imageBytes)
        try container.encode(fileBytes, forKey: .fileBytes)
        try container.encode(rowBytes, forKey: .rowBytes)
        try container.encode(bytesFreed, forKey: .bytesFreed)
        try container.encodeIfPresent(relationBytesBefore, forKey: .relationBytesBefore)
        try container.encodeIfPresent(relationBytesAfter, forKey: .relationBytesAfter)
    }
}

/// The JSON a job's `notify` URL receives (POST) when the job ends: done, failed (done with failed tasks) or cancelled.
public struct JobNotification: Codable, Sendable, Equatable {
    /// The job's id.
    public var job: Int64
    /// The job's name.
    public var name: String
    /// `done`, `failed` or `cancelled`.
    public var state: String
    /// Tasks in all.
    public var tasks: Int
    /// Its tasks by state.
    public var counts: TaskCounts
    /// When it ended (PostgreSQL's text form).
    public var finished: String
}

/// The `notify` URL of a job: where its end is POSTed.
public enum NotifyURL {
    /// The longest URL accepted.
    public static let maxLength = 2000

    /// `text` when it is an absolute http(s) URL with a host; a `ValidationFailure` naming `field` otherwise.
    public static func validated(_ text: String, field: String = "notify") throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.count <= maxLength, let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else {
            throw ValidationFailure(field: field, message: "must be an http(s) URL such as http://host:8000/hook (at most \(maxLength) characters)")
        }
        return trimmed
    }
}
