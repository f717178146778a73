/// A stored image without its bytes: a row of `GET /v1/jobs/{id}/images`.
public struct ImageRecord: Codable, Sendable, Equatable {
    /// The task's index within its job.
    public var index: Int
    /// The seed it was drawn with.
    public var seed: UInt64
    /// The task's id (its PNG is at `GET /v1/tasks/{task}/image`).
    public var task: Int64

}
