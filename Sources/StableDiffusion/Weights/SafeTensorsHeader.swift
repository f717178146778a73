import Foundation

/// A safetensors header: a JSON object of tensor entries by name, plus an optional `__metadata__` object of strings.
/// Its keys are the tensors' names, so it is decoded by hand, each bad entry named in the error.
struct SafeTensorsHeader: Codable {
    /// One tensor's entry as the file gives it; `SafeTensorsFile` checks it against the data section.
    struct TensorEntry: Codable {
        /// The element type's name (`F16`, `BF16`, …).
        var dtype: String
        /// Dimensions, each non-negative.
        var shape: [Int]
        /// Start and end of the tensor's bytes in the data section; nil when missing or not integers.
        var dataOffsets: [Int]?

        enum CodingKeys: String, CodingKey {
            case dtype, shape
            case dataOffsets = "data_offsets"
        }
    }

    /// A malformed header, with the message `SafeTensorsFile` reports.
    struct Invalid: Error { let message: String }

    /// The tensors by name.
    var tensors: [String: TensorEntry] = [:]
    /// The `__metadata__` strings.
    var metadata: [String: String] = [:]

    /// A header with `metadata` and no tensors yet.
    init(metadata: [String: String]) { self.metadata = metadata }

    /// Any key of the header object: a tensor's name or `__metadata__`.
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
        static let metadata = Key(stringValue: "__metadata__")
    }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            if key.stringValue == Key.metadata.stringValue {
                guard let strings = try? container.decode([String: String].self, forKey: key) else {
                    throw Invalid(message: "__metadata__ must map strings to strings")
                }
                metadata = strings
                continue
            }
            let name = key.stringValue
            guard let fields = try? container.nestedContainer(keyedBy: TensorEntry.CodingKeys.self, forKey: key) else {
                throw Invalid(message: "tensor \"\(name)\": entry is not an object")
            }
            guard let dtype = try? fields.decode(String.self, forKey: .dtype) else { throw Invalid(message: "tensor \"\(name)\": missing dtype") }
            guard let shape = try? fields.decode([Int].self, forKey: .shape), shape.allSatisfy({ $0 >= 0 }) else {
                throw Invalid(message: "tensor \"\(name)\": shape must be a list of non-negative integers")
            }
            tensors[name] = TensorEntry(dtype: dtype, shape: shape, dataOffsets: try? fields.decode([Int].self, forKey: .dataOffsets))
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        if !metadata.isEmpty { try container.encode(metadata, forKey: Key.metadata) }
        for (name, entry) in tensors { try container.encode(entry, forKey: Key(stringValue: name)) }
    }
}
