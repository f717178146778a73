import Logging

extension Logger.Metadata {
    /// The metadata of a log line about one task: its id, job, attempt and worker, as numbers
    /// where they are numbers (JSON logs keep them so), leaving out what the caller does not know.
    public static func task(_ task: Int64, job: Int64? = nil, attempt: Int? = nil, worker: String? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["task": .stringConvertible(task)]
        if let job { metadata["job"] = .stringConvertible(job) }
        if let attempt { metadata["attempt"] = .stringConvertible(attempt) }
        if let worker { metadata["worker"] = .string(worker) }
        return metadata
    }
}
