/// A worker's CURVE public key on the coordinator's allow-list: a row of `farm keys list --json`.
public struct WorkerKeyRecord: Codable, Sendable, Equatable {
    /// Z85 text, 40 characters.
    public var publicKey: String
    /// A label given when it was allowed (usually the worker host).
    public var name: String
    /// When it was allowed (PostgreSQL's text form).
    public var created: String
    /// When it was revoked, if it was (JSON null if not).
    @NullWhenNil public var revoked: String?

    enum CodingKeys: String, CodingKey {
        case name, created, revoked
        case publicKey = "public_key"
    }
}
