import Tensors

/// Reads a component's weights by name with shape checks, so that a checkpoint
/// that does not fit the config fails at load time with the tensor's name.
public struct WeightReader {
    /// The component's tensors (diffusers names).
    public let tensors: [String: Tensor]
    /// Where they came from, for messages.
    public let source: String
    let prefix: String

    /// Reads from `tensors`.
    public init(_ tensors: [String: Tensor], source: String) {
        self.tensors = tensors
        self.source = source
        prefix = ""
    }

    private init(tensors: [String: Tensor], source: String, prefix: String) {
        self.tensors = tensors
        self.source = source
        self.prefix = prefix
    }

    /// A reader for the names under `name.`.
    public func scope(_ name: String) -> WeightReader {
        WeightReader(tensors: tensors, source: source, prefix: prefix + name + ".")
    }

    /// Whether a tensor exists under this scope.
    public func has(_ name: String) -> Bool { tensors[prefix + name] != nil }

    /// The tensor `name` as Float32 (widened if the file stored halves), which must have `shape` if given: for the
    /// small weights that operations other than products read (norms, biases, position embeddings).
    public func tensor(_ name: String, shape: [Int]? = nil) throws -> Tensor {
        try stored(name, shape: shape).widened()
    }

    /// The tensor `name` as the file stored it (halves stay halves), which must have `shape` if given: for the large
    /// weights of dense layers, convolutions and embedding tables, whose kernels widen them as they run.
    public func stored(_ name: String, shape: [Int]? = nil) throws -> Tensor {
        guard let tensor = tensors[prefix + name] else {
            throw WeightsError(source, "missing tensor \(prefix + name)")
        }
        if let shape, tensor.shape != shape {
            throw WeightsError(source, "tensor \(prefix + name) has shape \(tensor.shape), the config needs \(shape)")
        }
        return tensor
    }
}

/// A dense layer y = x·Wᵀ + b over the last dimension.
public struct Linear {
    /// [out, in], as PyTorch stores it, and as the file stored it (halves are widened as the product runs).
    public let weight: Tensor
    /// [out] as Float32, or nil.
    public let bias: Tensor?

    /// Loads `name.weight` (and `name.bias` when `bias`) from `reader`.
    public init(_ reader: WeightReader, _ name: String, inputs: Int? = nil, outputs: Int? = nil, bias: Bool = true) throws {
        let scope = reader.scope(name)
        let weight = try scope.stored("weight")
        let shape = weight.shape
        if shape.count != 2 || (inputs.map { $0 != shape[1] } ?? false) || (outputs.map { $0 != shape[0] } ?? false) {
            throw WeightsError(
                reader.source, "\(name).weight has shape \(shape), expected [\(outputs.map(String.init) ?? "?"), \(inputs.map(String.init) ?? "?")]")
        }
        self.weight = weight
        self.bias = bias ? try scope.tensor("bias", shape: [shape[0]]) : nil
    }

    /// Wraps tensors already loaded (a bias stored as halves is widened).
    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias?.widened()
    }

    /// Output features.
    public var outputs: Int { weight.shape[0] }

    /// Applies the layer to [..., in].
    public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight: weight, bias: bias) }
}

/// A 2-D convolution with bias (NCHW).
public struct Conv2d {
    /// [out, in, kh, kw], as the file stored it (halves are widened as the convolution runs).
    public let weight: Tensor
    /// [out] as Float32.
    public let bias: Tensor?
    /// Step between windows.
    public let stride: Int
    /// Zero padding on every side.
    public let padding: Int

    /// Loads `name.weight`/`name.bias`; a 2-D weight (linear-as-conv) is read as 1×1.
    public init(_ reader: WeightReader, _ name: String, stride: Int = 1, padding: Int? = nil, bias: Bool = true) throws {
        let scope = reader.scope(name)
        var weight = try scope.stored("weight")
        if weight.rank == 2 { weight = weight.reshaped(weight.shape + [1, 1]) }
        guard weight.rank == 4 else {
            throw WeightsError(reader.source, "\(name).weight has shape \(weight.shape); a convolution needs 4 dimensions")
        }
        self.weight = weight
        self.bias = bias ? try scope.tensor("bias", shape: [weight.shape[0]]) : nil
        self.stride = stride
        self.padding = padding ?? weight.shape[2] / 2
    }

    /// Input channels.
    public var inputs: Int { weight.shape[1] }
    /// Output channels.
    public var outputs: Int { weight.shape[0] }

    /// Convolves [N, in, H, W].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// Group normalisation with per-channel affine parameters.
public struct GroupNorm {
    /// Scale per channel.
    public let weight: Tensor
    /// Shift per channel.
    public let bias: Tensor
    /// Number of groups.
    public let groups: Int
    /// Added to the variance.
    public let epsilon: Float

    /// Loads `name.weight`/`name.bias`.
    public init(_ reader: WeightReader, _ name: String, groups: Int, epsilon: Float) throws {
        let scope = reader.scope(name)
        weight = try scope.tensor("weight")
        bias = try scope.tensor("bias", shape: weight.shape)
        guard weight.count % groups == 0 else {
            throw WeightsError(reader.source, "\(name): \(weight.count) channels do not split into \(groups) groups")
        }
        self.groups = groups
        self.epsilon = epsilon
    }

    /// Normalises [N, C, ...] (inside a tiled VAE decode, with the statistics its tiles share),
    /// then applies SiLU if asked: fused, one pass over the activations instead of two.
    public func callAsFunction(_ x: Tensor, silu: Bool = false) -> Tensor {
        if let shared = SharedGroupStatistics.current { return shared.normalize(x, self, silu: silu) }
        return plain(x, silu: silu)
    }

    /// Normalises with `x`'s own statistics.
    func plain(_ x: Tensor, silu: Bool) -> Tensor {
        x.groupNorm(groups: groups, weight: weight, bias: bias, epsilon: epsilon, silu: silu)
    }
}

/// Layer normalisation over the last dimension.
public struct LayerNorm {
    /// Scale per feature.
    public let weight: Tensor
    /// Shift per feature.
    public let bias: Tensor
    /// Added to the variance.
    public let epsilon: Float

    /// Loads `name.weight`/`name.bias`.
    public init(_ reader: WeightReader, _ name: String, epsilon: Float = 1e-5) throws {
        let scope = reader.scope(name)
        weight = try scope.tensor("weight")
        bias = try scope.tensor("bias", shape: weight.shape)
        self.epsilon = epsilon
    }

    /// Normalises [..., features].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNorm(weight: weight, bias: bias, epsilon: epsilon)
    }
}

/// Multi-head attention with q/k/v/out projections, as diffusers' `Attention`
/// (names `to_q`, `to_k`, `to_v`, `to_out.0`) and CLIP's (`q_proj`, …, `out_proj`).
public struct MultiHeadAttention {
    let query: Linear, key: Linear, value: Linear, output: Linear
    /// Number of heads.
    public let heads: Int

    /// Loads diffusers-style projections (`to_q` … `to_out.0`).
    public init(diffusers reader: WeightReader, heads: Int, projectionBias: Bool = false) throws {
        query = try Linear(reader, "to_q", bias: projectionBias)
        key = try Linear(reader, "to_k", bias: projectionBias)
        value = try Linear(reader, "to_v", bias: projectionBias)
        output = try Linear(reader, "to_out.0")
        guard query.outputs % heads == 0 else {
            throw WeightsError(reader.source, "attention width \(query.outputs) does not split into \(heads) heads")
        }
        self.heads = heads
    }

    /// Loads CLIP-style projections (`q_proj` … `out_proj`).
    public init(clip reader: WeightReader, heads: Int) throws {
        query = try Linear(reader, "q_proj")
        key = try Linear(reader, "k_proj")
        value = try Linear(reader, "v_proj")
        output = try Linear(reader, "out_proj")
        guard query.outputs % heads == 0 else {
            throw WeightsError(reader.source, "attention width \(query.outputs) does not split into \(heads) heads")
        }
        self.heads = heads
    }

    /// Attends from x [B, N, C] to context [B, M, Cc] (x itself when nil).
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil, causal: Bool = false) -> Tensor {
        let source = context ?? x
        let attended = Tensor.attention(query: query(x), key: key(source), value: value(source), heads: heads, causal: causal)
        return output(attended)
    }
}
