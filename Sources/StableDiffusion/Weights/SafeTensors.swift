import Foundation
import Tensors

/// Why a weights file or folder cannot be used; every message names the file and,
/// where there is one, the tensor.
public struct WeightsError: Error, CustomStringConvertible, Equatable {
    /// The file or folder concerned.
    public var path: String
    /// What is wrong and, where it helps, what to do.
    public var message: String

    /// Makes an error about `path`.
    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Element types a safetensors file may hold that the engine reads: F16 and BF16 stay as stored (half the memory of
/// Float32; products widen them), F32 stays F32, and the rest are converted to Float32. Integer and boolean tensors
/// (position ids, step counters, masks in real downloads) are read too.
public enum StoredDType: String, Sendable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case f64 = "F64"
    case i8 = "I8"
    case i16 = "I16"
    case i32 = "I32"
    case i64 = "I64"
    case u8 = "U8"
    case u16 = "U16"
    case u32 = "U32"
    case u64 = "U64"
    case bool = "BOOL"

    /// How the engine keeps a tensor of this type: halves as they are, everything else as Float32.
    public var resident: ElementType {
        switch self {
        case .f16: return .float16
        case .bf16: return .bfloat16
        default: return .float32
        }
    }

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .i8, .u8, .bool: return 1
        case .f16, .bf16, .i16, .u16: return 2
        case .f32, .i32, .u32: return 4
        case .f64, .i64, .u64: return 8
        }
    }
}

/// A memory-mapped `.safetensors` file: the header is parsed and checked up front
/// (sizes, offsets, overlaps, dtypes); tensor data is read only when asked for and copied out of the map (F16 and
/// BF16 as they are, other types converted to Float32 once). Copied, not kept mapped: a model file replaced or
/// truncated on disk while a worker renders must not fault the process.
public final class SafeTensorsFile {
    /// One tensor's place in the file.
    public struct Entry: Sendable {
        /// Stored element type; nil for a type the engine cannot read (an error only when the tensor is read).
        public var dtype: StoredDType?
        /// The type's name as the file gives it.
        public var dtypeName: String
        /// Dimensions.
        public var shape: [Int]
        /// Byte range within the data section.
        public var range: Range<Int>
    }

    /// The file.
    public let url: URL
    /// Every tensor by name.
    public let entries: [String: Entry]
    /// The header's `__metadata__` strings.
    public let metadata: [String: String]
    private let file: MappedFile
    private let dataStart: Int

    /// Largest header accepted; real files have headers of a few hundred KB.
    public static let maxHeaderBytes = 100 << 20

    /// Opens and validates `url`; throws `WeightsError` on anything malformed.
    public init(url: URL) throws {
        self.url = url
        do {
            file = try MappedFile(url)
        } catch {
            throw WeightsError(url.path, error.message)
        }
        guard file.bytes.count >= 8, let base = file.bytes.baseAddress else {
            throw WeightsError(url.path, "file is \(file.bytes.count) bytes; a safetensors file starts with an 8-byte header length")
        }
        (entries, metadata, dataStart) = try SafeTensorsFile.parseHeader(base, size: file.bytes.count, path: url.path)
    }

    private static func parseHeader(_ base: UnsafeRawPointer, size: Int, path: String) throws
        -> (entries: [String: Entry], metadata: [String: String], dataStart: Int)
    {
        let headerLength = base.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength <= UInt64(min(size - 8, maxHeaderBytes)) else {
            throw WeightsError(
                path,
                "header length \(headerLength) exceeds the file (\(size) bytes) or the \(maxHeaderBytes)-byte limit; the file is truncated or not safetensors"
            )
        }
        let dataStart = 8 + Int(headerLength)
        let headerBytes = Data(bytes: base + 8, count: Int(headerLength))
        let header: SafeTensorsHeader
        do { header = try JSONDecoder().decode(SafeTensorsHeader.self, from: headerBytes) } catch let error as SafeTensorsHeader.Invalid {
            throw WeightsError(path, error.message)
        } catch {
            throw WeightsError(path, "header is not a JSON object")
        }
        let dataLength = size - dataStart
        var entries: [String: Entry] = [:]
        for (name, entry) in header.tensors {
            // An unknown type (an fp8 buffer, say) stops nothing until that tensor is read: most such
            // tensors are ones the engine never uses.
            let dtypeName = entry.dtype
            let dtype = StoredDType(rawValue: dtypeName)
            let dims = entry.shape
            guard let offsets = entry.dataOffsets, offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataLength else {
                throw WeightsError(
                    path,
                    "tensor \"\(name)\": data_offsets \(entry.dataOffsets.map { "\($0)" } ?? "missing") lie outside the \(dataLength)-byte data section"
                )
            }
            var elements = 1
            for dim in dims {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow else { throw WeightsError(path, "tensor \"\(name)\": shape \(dims) overflows") }
                elements = product
            }
            guard dtype.map({ offsets[1] - offsets[0] == elements * $0.size }) ?? true else {
                throw WeightsError(path, "tensor \"\(name)\": \(offsets[1] - offsets[0]) bytes do not hold shape \(dims) of \(dtypeName)")
            }
            entries[name] = Entry(dtype: dtype, dtypeName: dtypeName, shape: dims, range: offsets[0]..<offsets[1])
        }
        let ordered = entries.sorted { $0.value.range.lowerBound < $1.value.range.lowerBound }
        for (previous, next) in zip(ordered, ordered.dropFirst())
        where next.value.range.lowerBound < previous.value.range.upperBound && !next.value.range.isEmpty {
            throw WeightsError(path, "tensors \"\(previous.key)\" and \"\(next.key)\" overlap")
        }
        return (entries, header.metadata, dataStart)
    }

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// Reads one tensor: F16 and BF16 as stored (`Tensor.element`), every other type as Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else { throw WeightsError(url.path, "no tensor \"\(name)\"") }
        guard let dtype = entry.dtype else {
            throw WeightsError(url.path, "tensor \"\(name)\": dtype \(entry.dtypeName) is not supported (float, integer and BOOL types are)")
        }
        let source = file.bytes.baseAddress! + dataStart + entry.range.lowerBound
        defer { file.evict(UnsafeRawBufferPointer(start: source, count: entry.range.count)) }
        if dtype.resident != .float32 {
            return Tensor(shape: entry.shape, element: dtype.resident, bytes: UnsafeRawBufferPointer(start: source, count: entry.range.count))
        }
        var result = Tensor(uninitialized: entry.shape)
        let count = result.count
        let output = result.mutablePointer()
        func widen<Element: StorageElement>(_: Element.Type) { Element.convert(source, from: 0, count: count, into: output) }
        switch dtype {
        case .f32: widen(Float32Element.self)
        case .f16, .bf16: preconditionFailure("halves are returned as stored above")
        case .f64: widen(Float64Element.self)
        case .i8: widen(IntegerElement<Int8>.self)
        case .i16: widen(IntegerElement<Int16>.self)
        case .i32: widen(IntegerElement<Int32>.self)
        case .i64: widen(IntegerElement<Int64>.self)
        case .u8: widen(IntegerElement<UInt8>.self)
        case .u16: widen(IntegerElement<UInt16>.self)
        case .u32: widen(IntegerElement<UInt32>.self)
        case .u64: widen(IntegerElement<UInt64>.self)
        case .bool: widen(BoolElement.self)
        }
        return result
    }

    /// Reads the tensors whose names `keep` accepts (every one by default).
    public func tensors(where keep: (String) -> Bool) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for name in entries.keys where keep(name) { result[name] = try tensor(name) }
        return result
    }

    /// Reads every tensor.
    public func allTensors() throws -> [String: Tensor] {
        try tensors { _ in true }
    }

    /// Writes tensors as a safetensors file, each in the type it is stored in (F32, F16, BF16; names sorted, data
    /// 8-byte aligned).
    public static func write(_ tensors: [String: Tensor], to url: URL, metadata: [String: String] = [:]) throws {
        var header = SafeTensorsHeader(metadata: metadata)
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let tensor = tensors[name]!
            let dtype: StoredDType = tensor.element == .float16 ? .f16 : tensor.element == .bfloat16 ? .bf16 : .f32
            let bytes = tensor.count * dtype.size
            header.tensors[name] = SafeTensorsHeader.TensorEntry(dtype: dtype.rawValue, shape: tensor.shape, dataOffsets: [offset, offset + bytes])
            offset += bytes
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var json = try encoder.encode(header)
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var data = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for name in names { tensors[name]!.withUnsafeRawBytes { data.append(contentsOf: $0) } }
        try data.write(to: url, options: .atomic)
    }
}
