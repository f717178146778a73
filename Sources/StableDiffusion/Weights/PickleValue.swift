import Tensors

/// A value on the restricted unpickler's stack. Lists and dicts live in the unpickler's
/// arena and are referred to by index: pickles mutate containers after sharing them
/// (memo, APPEND, SETITEM), and an index keeps a hostile pickle's cycles and million-deep
/// chains from turning into retain cycles or recursive deinitialisation.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits, kept only as a marker: weights never need one.
    case bigInt
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// A tuple and its nesting depth, which is capped so that no deep recursion can follow.
    case tuple([PickleValue], depth: Int)
    /// A list (or set) in the arena.
    case list(Int)
    /// A dict (or OrderedDict) in the arena.
    case dict(Int)
    /// A global from the allow-list, not yet called.
    case global(AllowedGlobal)
    /// A storage in the unpickler's storage table.
    case storage(Int)
    /// A tensor in the unpickler's tensor table.
    case tensor(Int)
    /// An instance of an inert placeholder class (a numpy scalar, a Lightning callback): never decoded.
    case inert(String)

    /// Nesting depth of tuples; containers in the arena count as flat.
    var depth: Int {
        if case .tuple(_, let depth) = self { return depth }
        return 0
    }

    /// A short description of the value's kind, for error messages.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let global): return "global \(global.name)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .inert(let name): return "\(name) object"
        }
    }
}

/// A PyTorch storage dtype, as named by its legacy storage class in `torch.save`'s persistent ids.
enum StorageType: String, CaseIterable {
    case float = "FloatStorage"
    case half = "HalfStorage"
    case bfloat16 = "BFloat16Storage"
    case double = "DoubleStorage"
    case long = "LongStorage"
    case int = "IntStorage"
    case short = "ShortStorage"
    case char = "CharStorage"
    case byte = "ByteStorage"
    case bool = "BoolStorage"

    /// How the engine keeps a tensor of this storage: halves as they are, everything else as Float32.
    var resident: ElementType {
        switch self {
        case .half: return .float16
        case .bfloat16: return .bfloat16
        default: return .float32
        }
    }

    /// Bytes per element.
    var elementSize: Int {
        switch self {
        case .double, .long: return 8
        case .float, .int: return 4
        case .half, .bfloat16, .short: return 2
        case .char, .byte, .bool: return 1
        }
    }
}

/// One storage a persistent id named: the zip entry `<archive>/data/<key>` holding `count` elements.
struct StorageReference {
    let key: String
    let type: StorageType
    let count: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage. Checked against
/// its storage only when materialised, where the state-dict key is known for the error message.
struct TensorReference {
    let storage: Int
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// The globals a checkpoint may name. Naming one executes nothing: the unpickler interprets
/// each itself. Everything else is refused, because under `torch.load` a global is a Python
/// callable and a pickle can call it with any arguments (`os.system`, `builtins.eval`, …).
enum AllowedGlobal: Equatable {
    case orderedDict
    case rebuildTensor, rebuildTensorV2, rebuildParameter, rebuildParameterWithState
    case storage(StorageType)
    case torchSize
    case codecsEncode
    /// Classes that appear outside the state dict of real SD checkpoints (numpy scalars for
    /// `global_step`, Lightning's `ModelCheckpoint` as a dict key): accepted so those files load,
    /// turned into inert placeholders, never decoded.
    case inert(String)

    private static let inertNames: Set<String> = [
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint", "pytorch_lightning.callbacks.model_checkpoint",
    ]

    /// The allowed global `module.name`, or an error naming it.
    static func resolve(module: String, name: String) throws(CheckpointError) -> AllowedGlobal {
        let qualified = module + "." + name
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch", "Size"): return .torchSize
        case ("_codecs", "encode"): return .codecsEncode
        case ("torch", _) where name.hasSuffix("Storage"):
            guard let type = StorageType(rawValue: name) else {
                throw CheckpointError(
                    .unsupportedContent,
                    "storage type torch.\(name) is not supported (only float, "
                        + "half, bfloat16, double and integer storages are); convert the checkpoint's tensors to float16 "
                        + "or float32")
            }
            return .storage(type)
        default:
            if module == "pytorch_lightning.callbacks", name == "model_checkpoint" {
                return .inert("pytorch_lightning.callbacks.model_checkpoint")
            }
            if inertNames.contains(qualified) { return .inert(qualified) }
            throw CheckpointError(
                .refusedGlobal,
                "refused global '\(qualified)': a checkpoint may only name "
                    + "tensor-rebuilding globals, and this one would run code under torch.load. Do not load this file with "
                    + "PyTorch either; get the model as .safetensors from a source you trust")
        }
    }

    /// The Python name, for messages.
    var name: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensor: return "torch._utils._rebuild_tensor"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case .storage(let type): return "torch." + type.rawValue
        case .torchSize: return "torch.Size"
        case .codecsEncode: return "_codecs.encode"
        case .inert(let name): return name
        }
    }
}
