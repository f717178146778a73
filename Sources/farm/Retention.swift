import ArgumentParser
import Coordinator
import FarmModel
import Foundation
import JobStore

/// The coordinator's settings for where results live, how long and who is told: `--image-dir`, expiry and
/// notifications.
struct ResultOptions: ParsableArguments {
    @Option(
        help:
            "Write result images to this folder (e.g. a shared file system), named by their SHA-256, instead of into PostgreSQL; the database keeps their paths. Readers (farm fetch, the API) must see the folder at the same path."
    )
    var imageDir: String?

    @Option(help: "Seconds between removals of jobs past their expires_after (0: never).")
    var expirySeconds: Double = 60

    @Option(help: "Seconds before a failed job-end notification is sent again; doubled for each attempt after, up to an hour.")
    var notifyRetrySeconds: Double = 10

    @Option(help: "Seconds a job-end notification is tried before it is given up.")
    var notifyGiveUpSeconds: Double = 86_400

    func validate() throws {
        guard expirySeconds >= 0 && expirySeconds <= 86_400 else { throw ValidationError("--expiry-seconds must be 0...86400") }
        guard notifyRetrySeconds > 0 && notifyRetrySeconds <= 3600 else { throw ValidationError("--notify-retry-seconds must be in (0, 3600]") }
        guard notifyGiveUpSeconds > 0 && notifyGiveUpSeconds <= 7 * 86_400 else {
            throw ValidationError("--notify-give-up-seconds must be in (0, 604800]")
        }
        if let imageDir {
            do { _ = try ImageDirectory(path: imageDir) } catch let error as StoreFileError {
                throw ValidationError("--image-dir: \(error.description)")
            }
        }
    }

    /// The housekeeping settings these options give.
    var housekeeping: HousekeepingConfiguration {
        var settings = HousekeepingConfiguration()
        settings.expirySeconds = expirySeconds
        settings.notifyRetrySeconds = notifyRetrySeconds
        settings.notifyGiveUpSeconds = notifyGiveUpSeconds
        return settings
    }
}

/// `farm prune`: removes finished jobs' tasks, images and events and says how much space that freed.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the tasks, images (rows and files) and events of finished jobs, and report the space freed.",
        discussion: """
            Jobs that are done or cancelled with nothing queued or running, finished longer ago than --older-than \
            (without it: only jobs past their own expires_after). Their rows stay, marked pruned. Admin only over --server.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Option(help: "Prune jobs finished longer ago than this: 30d, 12h, 90m, 45s or seconds.")
    var olderThan: String?

    @Flag(help: "Skip the VACUUM after the prune (PostgreSQL then reuses the space but does not hand it back yet).")
    var noVacuum = false

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if let olderThan {
            do { _ = try RetentionPeriod.seconds(olderThan, field: "--older-than") } catch let failure as ValidationFailure {
                throw ValidationError(failure.description)
            }
        }
    }

    func run() throws {
        let seconds = try olderThan.map { try RetentionPeriod.seconds($0, field: "--older-than") }
        let report: PruneReport
        if let client = try remote.client() {
            var query = [URLQueryItem(name: "vacuum", value: noVacuum ? "false" : "true")]
            if let olderThan { query.append(URLQueryItem(name: "older_than", value: olderThan)) }
            report = try client.json(PruneReport.self, "POST", "prune", query: query)
        } else {
            report = try JobStore(connection: try database.connect()).prune(olderThan: seconds, vacuum: !noVacuum)
        }
        if json { return try printJSON(report) }
        print(
            "pruned \(report.jobs) job(s): \(report.images) image(s), \(report.tasks) task(s), \(report.events) event(s); "
                + "freed \(Prune.size(report.bytesFreed)) (\(Prune.size(report.imageBytes)) of PNGs in the database, "
                + "\(Prune.size(report.fileBytes)) in \(report.files) file(s), \(Prune.size(report.rowBytes)) of rows)")
        if let before = report.relationBytesBefore, let after = report.relationBytesAfter {
            print("tables (images, tasks, events) after VACUUM: \(Prune.size(before)) → \(Prune.size(after))")
        }
    }

    /// Bytes in the largest unit that keeps a whole number in front.
    static func size(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
