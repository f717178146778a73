import Foundation

/// A restricted pickle interpreter for `torch.save`'s `data.pkl` (opcodes of protocols 0–5).
/// It builds plain values and never executes anything: the few globals a checkpoint needs
/// (`AllowedGlobal`) are interpreted here, every other global is refused, and storages named
/// by persistent ids become references to zip entries. Sizes a hostile pickle could inflate
/// (stack, memo, containers, strings, nesting) are capped by `Limits`.
final class Unpickler {
    /// Caps that bound the memory and recursion a pickle can cause; real SD checkpoints
    /// (optimizer states included) stay orders of magnitude below each.
    struct Limits {
        /// Values on the stack at once.
        var stackDepth = 1 << 20
        /// Open MARKs at once.
        var markDepth = 1 << 10
        /// Memo entries.
        var memoEntries = 1 << 20
        /// Items in all lists, dicts, sets and tuples together.
        var containerItems = 1 << 22
        /// Bytes of one string or bytes object.
        var stringBytes = 1 << 26
        /// Bytes made by `_codecs.encode` in all: a memoized string can be encoded again and again
        /// for a few input bytes each time, so unlike strings read from the input these need a total.
        var encodedBytes = 1 << 26
        /// Tuples inside tuples.
        var tupleDepth = 64
        /// Dimensions of one tensor.
        var tensorRank = 32
    }

    /// Checks a storage that a persistent id names (that its zip entry exists and is large enough).
    typealias StorageValidator = (StorageReference) throws(CheckpointError) -> Void

    let input: UnsafeRawBufferPointer
    let limits: Limits
    private let validateStorage: StorageValidator
    var position = 0
    var opcodeStart = 0
    var stack: [PickleValue] = []
    /// Stack heights at each open MARK: items above the top one belong to it.
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    var items = 0
    var encodedBytes = 0

    /// Lists and sets, by the index a `.list` value holds.
    var lists: [[PickleValue]] = []
    /// Dicts in insertion order, by the index a `.dict` value holds.
    var dicts: [[(key: PickleValue, value: PickleValue)]] = []
    /// Storages, one per distinct key, by the index a `.storage` value holds.
    private(set) var storages: [StorageReference] = []
    private var storageIndex: [String: Int] = [:]
    /// Tensors, by the index a `.tensor` value holds.
    private(set) var tensors: [TensorReference] = []

    init(_ input: UnsafeRawBufferPointer, limits: Limits = Limits(), validateStorage: @escaping StorageValidator) {
        self.input = input
        self.limits = limits
        self.validateStorage = validateStorage
    }

    /// Runs the pickle to its STOP and returns the object it built.
    func load() throws(CheckpointError) -> PickleValue {
        while position < input.count {
            opcodeStart = position
            let opcode = try byte()
            if opcode == UInt8(ascii: ".") {
                return try pop()
            }
            try execute(opcode)
        }
        throw malformed("the pickle ends without a STOP opcode (truncated)")
    }

    // MARK: - Opcodes

    private func execute(_ opcode: UInt8) throws(CheckpointError) {
        switch opcode {
        case 0x80:  // PROTO
            let version = try byte()
            guard version <= 5 else { throw malformed("pickle protocol \(version) is newer than 5") }
        case 0x95:  // FRAME: a length prefix only; frame contents are read as ordinary opcodes.
            _ = try take(8)
        case UInt8(ascii: "("):  // MARK
            guard marks.count < limits.markDepth else {
                throw limit("more than \(limits.markDepth) nested MARKs")
            }
            marks.append(stack.count)
        case UInt8(ascii: "0"):  // POP
            if stack.count > (marks.last ?? 0) {
                stack.removeLast()
            } else if !marks.isEmpty {
                marks.removeLast()
            } else {
                throw malformed("POP on an empty stack")
            }
        case UInt8(ascii: "1"):  // POP_MARK
            _ = try popMark()
        case UInt8(ascii: "2"):  // DUP
            try push(try top())

        // Constants and numbers.
        case UInt8(ascii: "N"): try push(.none)
        case 0x88: try push(.bool(true))
        case 0x89: try push(.bool(false))
        case UInt8(ascii: "J"): try push(.int(Int(Int32(bitPattern: try uint32()))))
        case UInt8(ascii: "K"): try push(.int(Int(try byte())))
        case UInt8(ascii: "M"): try push(.int(Int(try uint16())))
        case 0x8A: try push(try long(length: Int(try byte())))
        case 0x8B:  // LONG4
            let length = Int32(bitPattern: try uint32())
            guard length >= 0 else { throw malformed("LONG4 with negative length \(length)") }
            try push(try long(length: Int(length)))
        case UInt8(ascii: "G"): try push(.float(Double(bitPattern: UInt64(bigEndian: try raw(UInt64.self)))))
        case UInt8(ascii: "I"):  // INT (text), where "00"/"01" are protocol 0's booleans
            let text = try line()
            if text == "00" {
                try push(.bool(false))
            } else if text == "01" {
                try push(.bool(true))
            } else {
                try push(try integer(text))
            }
        case UInt8(ascii: "L"):  // LONG (text)
            var text = try line()
            if text.hasSuffix("L") { text.removeLast() }
            try push(try integer(text))
        case UInt8(ascii: "F"):  // FLOAT (text)
            let text = try line()
            guard let value = Double(text) else { throw malformed("FLOAT with unreadable text '\(text.prefix(40))'") }
            try push(.float(value))

        // Strings and bytes.
        case UInt8(ascii: "X"): try push(.string(try utf8(length: UInt64(try uint32()))))
        case 0x8C: try push(.string(try utf8(length: UInt64(try byte()))))
        case 0x8D: try push(.string(try utf8(length: try uint64())))
        case UInt8(ascii: "B"): try push(.bytes(try bytes(length: UInt64(try uint32()))))
        case UInt8(ascii: "C"): try push(.bytes(try bytes(length: UInt64(try byte()))))
        case 0x8E, 0x96: try push(.bytes(try bytes(length: try uint64())))  // BINBYTES8, BYTEARRAY8
        case UInt8(ascii: "T"):  // BINSTRING: Python 2 str; torch.load decodes it as text
            let length = Int32(bitPattern: try uint32())
            guard length >= 0 else { throw malformed("BINSTRING with negative length \(length)") }
            try push(.string(latin1(try bytes(length: UInt64(length)))))
        case UInt8(ascii: "U"): try push(.string(latin1(try bytes(length: UInt64(try byte())))))
        case UInt8(ascii: "S"): try push(.string(try quotedString(try line())))
        case UInt8(ascii: "V"): try push(.string(try rawUnicodeEscape(try line())))

        // Containers.
        case UInt8(ascii: "}"): try push(try newDict([]))
        case UInt8(ascii: "]"), 0x8F: try push(try newList([]))  // EMPTY_LIST, EMPTY_SET
        case UInt8(ascii: ")"): try push(.tuple([], depth: 1))
        case UInt8(ascii: "t"): try push(try tuple(try popMark()))
        case 0x85: try push(try tuple([try pop()]))
        case 0x86:
            let second = try pop()
            try push(try tuple([try pop(), second]))
        case 0x87:
            let third = try pop()
            let second = try pop()
            try push(try tuple([try pop(), second, third]))
        case UInt8(ascii: "l"): try push(try newList(try popMark()))
        case 0x91: try push(try newList(try popMark()))  // FROZENSET
        case UInt8(ascii: "d"): try push(try newDict(try pairs(try popMark())))
        case UInt8(ascii: "a"):  // APPEND
            let value = try pop()
            try append([value], to: try top())
        case UInt8(ascii: "e"), 0x90:  // APPENDS, ADDITEMS
            let values = try popMark()
            try append(values, to: try top())
        case UInt8(ascii: "s"):  // SETITEM
            let value = try pop()
            let key = try pop()
            try setItems([(key, value)], in: try top())
        case UInt8(ascii: "u"):  // SETITEMS
            let values = try popMark()
            try setItems(try pairs(values), in: try top())

        // Memo.
        case UInt8(ascii: "q"): try put(Int(try byte()))
        case UInt8(ascii: "r"): try put(Int(try uint32()))
        case UInt8(ascii: "p"): try put(try index(try line()))
        case 0x94: try put(memo.count)  // MEMOIZE
        case UInt8(ascii: "h"): try push(try get(Int(try byte())))
        case UInt8(ascii: "j"): try push(try get(Int(try uint32())))
        case UInt8(ascii: "g"): try push(try get(try index(try line())))

        // Globals, calls and objects.
        case UInt8(ascii: "c"):  // GLOBAL
            let module = try line()
            let name = try line()
            try push(.global(try AllowedGlobal.resolve(module: module, name: name)))
        case 0x93:  // STACK_GLOBAL
            let name = try pop()
            let module = try pop()
            guard case .string(let moduleName) = module, case .string(let globalName) = name else {
                throw malformed("STACK_GLOBAL on a \(module.kind) and a \(name.kind), not two strings")
            }
            try push(.global(try AllowedGlobal.resolve(module: moduleName, name: globalName)))
        case UInt8(ascii: "R"):  // REDUCE
            let arguments = try pop()
            let callable = try pop()
            try push(try call(callable, arguments))
        case 0x81:  // NEWOBJ
            let arguments = try pop()
            let type = try pop()
            try push(try instantiate(type, arguments))
        case 0x92:  // NEWOBJ_EX
            _ = try pop()
            let arguments = try pop()
            let type = try pop()
            try push(try instantiate(type, arguments))
        case UInt8(ascii: "o"):  // OBJ
            var values = try popMark()
            guard !values.isEmpty else { throw malformed("OBJ without a class") }
            let type = values.removeFirst()
            try push(try instantiate(type, try tuple(values)))
        case UInt8(ascii: "i"):  // INST
            let module = try line()
            let name = try line()
            let global = try AllowedGlobal.resolve(module: module, name: name)
            try push(try instantiate(.global(global), try tuple(try popMark())))
        case UInt8(ascii: "b"):  // BUILD
            let state = try pop()
            try build(try top(), state: state)
        case UInt8(ascii: "Q"):  // BINPERSID
            try push(try persistentLoad(try pop()))
        case UInt8(ascii: "P"):
            throw CheckpointError(
                .unsupportedContent,
                "text persistent id (PERSID) found; torch.save writes "
                    + "BINPERSID, so this is not a PyTorch checkpoint")
        case 0x82, 0x83, 0x84:
            throw refusedOpcode("EXT (copyreg extension registry)")
        case 0x97:
            throw refusedOpcode("NEXT_BUFFER (out-of-band buffers)")
        case 0x98:  // READONLY_BUFFER: a flag on the top buffer; nothing to do.
            _ = try top()
        default:
            throw malformed(String(format: "unknown opcode 0x%02x", opcode))
        }
    }

    // MARK: - Interpreting the allowed globals

    private func call(_ callable: PickleValue, _ arguments: PickleValue) throws(CheckpointError) -> PickleValue {
        guard case .global(let global) = callable else {
            throw malformed("REDUCE calls a \(callable.kind); only allowed globals can be called")
        }
        guard case .tuple(let args, _) = arguments else {
            throw malformed("REDUCE on \(global.name) with \(arguments.kind) arguments, not a tuple")
        }
        switch global {
        case .orderedDict:
            guard args.isEmpty else { throw unsupportedCall(global, "arguments") }
            return try newDict([])
        case .rebuildTensor, .rebuildTensorV2:
            guard args.count >= 4, case .storage(let storage) = args[0], case .int(let offset) = args[1] else {
                let kinds = args.map(\.kind).joined(separator: ", ")
                throw malformed("\(global.name) needs (storage, offset, size, stride, …), got (\(kinds))")
            }
            let shape = try integers(args[2], "size of \(global.name)")
            let strides = try integers(args[3], "stride of \(global.name)")
            guard shape.count == strides.count else {
                throw CheckpointError(
                    .invalidTensor,
                    "a tensor has \(shape.count) sizes but \(strides.count) "
                        + "strides; the file is damaged")
            }
            guard shape.count <= limits.tensorRank else {
                throw limit("a tensor of rank \(shape.count) (at most \(limits.tensorRank))")
            }
            // Memoized arguments make each rebuild a few input bytes, so tensors count like containers.
            try addItems(1 + 2 * shape.count)
            tensors.append(TensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
            return .tensor(tensors.count - 1)
        case .rebuildParameter, .rebuildParameterWithState:
            guard let data = args.first, case .tensor = data else {
                throw malformed("\(global.name) needs a tensor as its first argument")
            }
            return data
        case .torchSize:
            guard args.count == 1 else { throw unsupportedCall(global, "\(args.count) arguments") }
            return try tuple(try integers(args[0], "torch.Size").map { .int($0) })
        case .codecsEncode:
            guard args.count == 2, case .string(let text) = args[0], case .string(let encoding) = args[1] else {
                throw unsupportedCall(global, "arguments other than (str, encoding)")
            }
            encodedBytes += text.utf8.count
            guard encodedBytes <= limits.encodedBytes else {
                throw limit("more than \(limits.encodedBytes) bytes made by _codecs.encode")
            }
            switch encoding.lowercased() {
            case "latin1", "latin-1", "iso-8859-1":
                var bytes: [UInt8] = []
                bytes.reserveCapacity(text.unicodeScalars.count)
                for scalar in text.unicodeScalars {
                    guard scalar.value < 256 else { throw malformed("_codecs.encode: '\(scalar)' is not latin-1") }
                    bytes.append(UInt8(scalar.value))
                }
                return .bytes(bytes)
            case "utf-8", "utf8":
                return .bytes(Array(text.utf8))
            default:
                throw unsupportedCall(global, "encoding '\(encoding)'")
            }
        case .storage:
            throw malformed("\(global.name) is called directly; storages may only come from persistent ids")
        case .inert(let name):
            return .inert(name)
        }
    }

    private func instantiate(_ type: PickleValue, _ arguments: PickleValue) throws(CheckpointError) -> PickleValue {
        guard case .global(let global) = type else {
            throw malformed("an object of class \(type.kind) is created; only allowed globals are classes")
        }
        switch global {
        case .orderedDict: return try newDict([])
        case .inert(let name): return .inert(name)
        default: throw unsupportedCall(global, "object creation")
        }
    }

    /// BUILD sets an object's state. The states that occur (an OrderedDict's `_metadata`, a
    /// placeholder's fields, a Parameter's attributes) carry nothing the weights need, so they are dropped.
    private func build(_ object: PickleValue, state: PickleValue) throws(CheckpointError) {
        switch object {
        case .dict, .inert, .tensor: return
        default: throw malformed("BUILD on a \(object.kind)")
        }
    }

    /// A persistent id `('storage', storage class, key, location, element count)` as torch.save writes it.
    private func persistentLoad(_ id: PickleValue) throws(CheckpointError) -> PickleValue {
        guard case .tuple(let fields, _) = id, fields.count == 5, case .string("storage") = fields[0],
            case .global(let global) = fields[1], case .string(let key) = fields[2], case .int(let count) = fields[4]
        else {
            throw CheckpointError(
                .unsupportedContent,
                "persistent id \(id.kind) is not torch.save's ('storage', type, "
                    + "key, location, count); this is not a checkpoint written by torch.save")
        }
        guard case .storage(let type) = global else {
            throw malformed("persistent id names \(global.name) where a storage class belongs")
        }
        guard count >= 0 else { throw malformed("storage '\(key)' has a negative element count \(count)") }
        if let existing = storageIndex[key] {
            guard storages[existing].type == type, storages[existing].count == count else {
                throw malformed("storage '\(key)' is named twice with different types or sizes")
            }
            return .storage(existing)
        }
        let storage = StorageReference(key: key, type: type, count: count)
        try validateStorage(storage)
        storages.append(storage)
        storageIndex[key] = storages.count - 1
        return .storage(storages.count - 1)
    }

    private func integers(_ value: PickleValue, _ what: String) throws(CheckpointError) -> [Int] {
        guard case .tuple(let elements, _) = value else { throw malformed("\(what) is a \(value.kind), not a tuple") }
        var result: [Int] = []
        result.reserveCapacity(elements.count)
        for element in elements {
            guard case .int(let number) = element else {
                throw malformed("\(what) holds a \(element.kind), not an int")
            }
            result.append(number)
        }
        return result
    }

    // MARK: - Stack, memo and containers
}
