import Foundation
import Tensors
import Testing

/// One PyTorch reference case from Fixtures/kernels.json (written by Tools/make_kernel_fixtures.py).
struct KernelCase: Sendable, CustomTestStringConvertible {
    let kind: String
    let name: String
    let parameters: [String: FixtureValue]
    let inputs: [String: TensorReference]
    let output: TensorReference

    var testDescription: String { name }
}

/// A tensor's place in kernels.bin.
struct TensorReference: Decodable, Sendable {
    let shape: [Int]
    let offset: Int
}

/// A JSON parameter value (number, bool or list of numbers).
enum FixtureValue: Decodable, Sendable {
    case number(Double)
    case flag(Bool)
    case list([Double])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let flag = try? container.decode(Bool.self) {
            self = .flag(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else {
            self = .list(try container.decode([Double].self))
        }
    }

    var int: Int { if case .number(let n) = self { return Int(n) } else { fatalError("not a number") } }
    var float: Float { if case .number(let n) = self { return Float(n) } else { fatalError("not a number") } }
    var bool: Bool { if case .flag(let b) = self { return b } else { fatalError("not a flag") } }
    var list: [Double] { if case .list(let l) = self { return l } else { fatalError("not a list") } }
}

private struct FixtureFile: Decodable {
    struct Entry: Decodable {
        let kind: String
        let name: String
        let params: [String: FixtureValue]
        let inputs: [String: TensorReference]
        let output: TensorReference
    }
    let cases: [Entry]
}

enum Fixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static let cases: [KernelCase] = {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("kernels.json")),
            let file = try? JSONDecoder().decode(FixtureFile.self, from: data)
        else { return [] }
        return file.cases.map { KernelCase(kind: $0.kind, name: $0.name, parameters: $0.params, inputs: $0.inputs, output: $0.output) }
    }()

    static let blob: [Float] = {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("kernels.bin")) else { return [] }
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }()

    static func tensor(_ reference: TensorReference) -> Tensor {
        let count = reference.shape.reduce(1, *)
        return Tensor(shape: reference.shape, values: Array(blob[reference.offset..<reference.offset + count]))
    }
}

/// Runs the kernel a case names on its inputs.
func evaluate(_ fixture: KernelCase) -> Tensor {
    let input = fixture.inputs.mapValues(Fixtures.tensor)
    let p = fixture.parameters
    switch fixture.kind {
    case "linear": return input["x"]!.linear(weight: input["weight"]!, bias: input["bias"])
    case "conv2d":
        return input["x"]!.conv2d(
            weight: input["weight"]!, bias: input["bias"], stride: p["stride"]!.int,
            padding: p["padding"]!.int)
    case "group_norm":
        return input["x"]!.groupNorm(
            groups: p["groups"]!.int, weight: input["weight"]!, bias: input["bias"]!,
            epsilon: p["eps"]!.float)
    case "layer_norm": return input["x"]!.layerNorm(weight: input["weight"]!, bias: input["bias"]!, epsilon: p["eps"]!.float)
    case "silu": return input["x"]!.silu()
    case "gelu": return input["x"]!.gelu()
    case "gelu_tanh": return input["x"]!.geluTanh()
    case "quick_gelu": return input["x"]!.quickGelu()
    case "geglu": return input["x"]!.geglu()
    case "softmax": return input["x"]!.softmax()
    case "attention", "attention_causal":
        return Tensor.attention(
            query: input["q"]!, key: input["k"]!, value: input["v"]!, heads: p["heads"]!.int,
            causal: fixture.kind == "attention_causal")
    case "upsample_nearest2x": return input["x"]!.upsampledNearest2x()
    case "concat": return Tensor.concat([input["a"]!, input["b"]!], axis: p["axis"]!.int)
    case "add": return input["a"]! + input["b"]!
    case "mul": return input["a"]! * input["b"]!
    case "embedding": return Tensor.embedding(table: input["table"]!, ids: p["ids"]!.list.map { Int($0) })
    case "timestep_embedding":
        return Tensor.timestepEmbedding(
            p["timesteps"]!.list.map { Float($0) }, dimension: p["dim"]!.int,
            flipSinToCos: p["flip"]!.bool, downscaleFreqShift: p["shift"]!.float)
    case "sum": return Tensor(shape: [1], values: [input["x"]!.sum()])
    case "mean": return Tensor(shape: [1], values: [input["x"]!.mean()])
    case "std": return Tensor(shape: [1], values: [input["x"]!.standardDeviation()])
    case "abs_max": return Tensor(shape: [1], values: [input["x"]!.absMax()])
    default: fatalError("fixture kind \(fixture.kind) has no kernel")
    }
}

@Test func fixturesArePresentAndCoverEveryKernel() {
    let kinds = Set(Fixtures.cases.map(\.kind))
    #expect(Fixtures.cases.count >= 50)
    for kind in [
        "linear", "conv2d", "group_norm", "layer_norm", "silu", "gelu", "gelu_tanh", "quick_gelu", "geglu",
        "softmax", "attention", "attention_causal", "upsample_nearest2x", "concat", "add", "mul",
        "embedding", "timestep_embedding", "sum", "mean", "std",
    ] {
        #expect(kinds.contains(kind), "no fixture for \(kind)")
    }
}

@Test(arguments: Fixtures.cases)
func kernelMatchesPyTorch(_ fixture: KernelCase) {
    let expected = Fixtures.tensor(fixture.output)
    let actual = evaluate(fixture)
    #expect(actual.shape == expected.shape)
    guard actual.shape == expected.shape else { return }
    var worst = (index: 0, excess: Float(0))
    let a = actual.scalars
    let e = expected.scalars
    // sin/cos of t·f for t near 1000: one ulp of PyTorch's float32 e^x (which is not
    // correctly rounded: 3 of SD's 160 frequencies differ by an ulp) moves the angle by
    // up to 1000·f·2⁻²³, so the bound there is that angle error, not a relative one.
    let angleError: [Float] =
        fixture.kind == "timestep_embedding"
        ? timestepAngleErrors(fixture, columns: expected.shape[1]) : []
    for index in a.indices {
        let difference = abs(a[index] - e[index])
        // Within 1e-4 relative error, or 1e-5 absolute for values near zero.
        var allowed = max(1e-4 * abs(e[index]), 1e-5)
        if !angleError.isEmpty { allowed = max(allowed, angleError[index]) }
        if difference / allowed > worst.excess { worst = (index, difference / allowed) }
    }
    #expect(worst.excess <= 1, "\(fixture.name): element \(worst.index) is \(a[worst.index]), PyTorch \(e[worst.index])")
}

/// For each element of a timestep embedding, the change one float32 ulp of its
/// frequency makes to its angle t·f.
func timestepAngleErrors(_ fixture: KernelCase, columns: Int) -> [Float] {
    let timesteps = fixture.parameters["timesteps"]!.list.map { Float($0) }
    let half = fixture.parameters["dim"]!.int / 2
    let shift = fixture.parameters["shift"]!.float
    return timesteps.flatMap { t in
        (0..<columns).map { column -> Float in
            let i = column % max(half, 1)
            let frequency = Float(exp(-log(10_000.0) * Double(i) / Double(Float(half) - shift)))
            return t * frequency.ulp
        }
    }
}

/// The SiLU, GELU, GEGLU, softmax and attention fixtures hold on every instruction-set path the CPU has.
@Test(.serialized, arguments: [0, 1, 2])
func vectorPathsAgreeWithPyTorch(level: Int32) {
    let previous = Tensor.limitInstructionSet(level)
    defer { Tensor.limitInstructionSet(previous) }
    for fixture in Fixtures.cases where ["silu", "gelu", "geglu", "softmax", "attention", "attention_causal"].contains(fixture.kind) {
        let expected = Fixtures.tensor(fixture.output)
        let difference = evaluate(fixture).maxAbsDifference(expected)
        #expect(difference <= 1e-5 + 1e-4 * expected.absMax(), "\(fixture.name) at level \(level)")
    }
}
