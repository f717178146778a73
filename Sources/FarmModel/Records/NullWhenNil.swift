/// An optional record field that JSON always carries: nil is written as `null`, where the synthesized `Codable`
/// would leave the key out; a null or a missing key reads back as nil.
///
/// Clients read `eta_seconds`, `revoked` and `steps_per_second` as present-but-null, so the records mark those
/// fields `@NullWhenNil` and keep their synthesized `Codable` instead of each writing `encode(to:)` by hand.
@propertyWrapper
public struct NullWhenNil<Value: Codable>: Codable {
    /// The field's value.
    public var wrappedValue: Value?

    /// Wraps a value.
    public init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    /// Reads the value; null reads as nil.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    /// Writes the value, or null when there is none.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension NullWhenNil: Sendable where Value: Sendable {}

extension NullWhenNil: Equatable where Value: Equatable {}

extension KeyedDecodingContainer {
    /// Reads a missing `@NullWhenNil` field as nil, as the synthesized `Codable` reads a missing plain optional
    /// (the synthesized `init(from:)` calls this overload for wrapped fields).
    public func decode<Value>(_ type: NullWhenNil<Value>.Type, forKey key: Key) throws -> NullWhenNil<Value> {
        try decodeIfPresent(type, forKey: key) ?? NullWhenNil(wrappedValue: nil)
    }
}
