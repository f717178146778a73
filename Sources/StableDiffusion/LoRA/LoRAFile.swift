import Foundation
import Tensors

/// The parts a LoRA file stores per layer, under every spelling the trainers use.
enum LoRAPart: String, CaseIterable {
    case down, up, mid, alpha
    case hadaW1A, hadaW1B, hadaW2A, hadaW2B, hadaT1, hadaT2
    case lokrW1, lokrW1A, lokrW1B, lokrW2, lokrW2A, lokrW2B, lokrT2
    case diff, diffBias, doraScale

    /// Key suffixes (after the layer's name and a dot) and the part each names.
    static let suffixes: [(String, LoRAPart)] = [
        ("lora_down.weight", .down), ("lora_A.weight", .down), ("lora.down.weight", .down),
        ("lora_up.weight", .up), ("lora_B.weight", .up), ("lora.up.weight", .up),
        ("lora_mid.weight", .mid), ("alpha", .alpha),
        ("hada_w1_a", .hadaW1A), ("hada_w1_b", .hadaW1B), ("hada_w2_a", .hadaW2A), ("hada_w2_b", .hadaW2B),
        ("hada_t1", .hadaT1), ("hada_t2", .hadaT2),
        ("lokr_w1", .lokrW1), ("lokr_w1_a", .lokrW1A), ("lokr_w1_b", .lokrW1B),
        ("lokr_w2", .lokrW2), ("lokr_w2_a", .lokrW2A), ("lokr_w2_b", .lokrW2B), ("lokr_t2", .lokrT2),
        ("diff", .diff), ("diff_b", .diffBias), ("dora_scale", .doraScale),
    ]
}

/// One layer of a LoRA file as stored: the file's name for it and its parts.
struct LoRALayer {
    /// The key without the part's suffix (`lora_unet_…_to_q`, `unet.….to_q`).
    var key: String
    /// The stored parts.
    var parts: [LoRAPart: Tensor]
}

/// A LoRA file read from disk (kohya/web UI, diffusers/PEFT, LyCORIS LoCon/LoHa/LoKr), not yet tied to a model:
/// `modules(for:)` maps its layers onto a model's weights.
public struct LoRAFile {
    /// Where it was read from.
    public let url: URL
    /// The name prompts use for it: the file name without its extension.
    public var name: String { url.deletingPathExtension().lastPathComponent }
    /// Its layers in key order.
    let layers: [LoRALayer]

    /// Reads a `.safetensors` (or a PyTorch `.pt`/`.ckpt` through the restricted unpickler); throws
    /// `AddOnFileError` naming the file for anything unreadable or a key that is no LoRA part.
    public static func load(_ url: URL) throws(AddOnFileError) -> LoRAFile {
        let tensors = try AddOnFiles.tensors(url, what: "LoRA")
        var grouped: [String: [LoRAPart: Tensor]] = [:]
        var unknown: [String] = []
        for (key, tensor) in tensors {
            guard let (layer, part) = split(key) else {
                unknown.append(key)
                continue
            }
            grouped[layer, default: [:]][part] = tensor
        }
        guard unknown.isEmpty else {
            throw AddOnFileError(
                .unknownKeys, file: url.path,
                "\(unknown.count) key(s) are no LoRA part (\(unknown.sorted().prefix(3).joined(separator: ", "))); expected kohya "
                    + "(lora_down/lora_up/alpha), PEFT (lora_A/lora_B), LoHa (hada_*) or LoKr (lokr_*) keys")
        }
        guard !grouped.isEmpty else { throw AddOnFileError(.empty, file: url.path, "the file holds no LoRA layers") }
        return LoRAFile(url: url, layers: grouped.keys.sorted().map { LoRALayer(key: $0, parts: grouped[$0]!) })
    }

    /// The layer name and part of a key, by the longest matching suffix.
    static func split(_ key: String) -> (String, LoRAPart)? {
        var best: (String, LoRAPart)?
        for (suffix, part) in LoRAPart.suffixes where key.hasSuffix("." + suffix) {
            let layer = String(key.dropLast(suffix.count + 1))
            if best.map({ layer.count < $0.0.count }) ?? true { best = (layer, part) }
        }
        return best
    }

    /// Every layer mapped onto `model`: the network and weight it changes and the change itself. Throws for a layer
    /// that names no weight of this model (`wrongArchitecture` when the file is plainly for another family), lacks a
    /// part, or uses a form the engine does not implement.
    public func modules(for model: ModelWeights) throws(AddOnFileError) -> [LoRAModule] {
        let targets = LoRATargets(model)
        var modules: [LoRAModule] = []
        var unplaced: [String] = []
        for layer in layers {
            guard let (component, target) = targets.locate(layer.key) else {
                unplaced.append(layer.key)
                continue
            }
            modules.append(
                LoRAModule(
                    component: component, target: target, delta: try delta(of: layer),
                    alpha: layer.parts[.alpha].map { $0.widened().scalars.first ?? 0 }, key: layer.key))
        }
        guard unplaced.isEmpty else { throw targets.placementError(unplaced, file: url.path, total: layers.count) }
        return modules
    }

    /// The change one layer stores, from whichever parts it has.
    private func delta(of layer: LoRALayer) throws(AddOnFileError) -> LoRADelta {
        let parts = layer.parts
        func need(_ part: LoRAPart) throws(AddOnFileError) -> Tensor {
            guard let tensor = parts[part] else {
                throw AddOnFileError(.missingPart, file: url.path, "layer \(layer.key) lacks its \(part.rawValue) part; the file is incomplete")
            }
            return tensor.widened()
        }
        for part in [LoRAPart.mid, .hadaT1, .hadaT2, .lokrT2, .doraScale, .diffBias] where parts[part] != nil {
            throw AddOnFileError(
                .unsupported, file: url.path,
                "layer \(layer.key) uses \(part.rawValue) (Tucker-decomposed, DoRA or bias-changing layers), which this engine does not apply yet; "
                    + "export the LoRA without them")
        }
        if parts[.down] != nil || parts[.up] != nil { return .lowRank(down: try need(.down), up: try need(.up)) }
        if parts.keys.contains(where: { $0.rawValue.hasPrefix("hada") }) {
            return .hadamard(w1a: try need(.hadaW1A), w1b: try need(.hadaW1B), w2a: try need(.hadaW2A), w2b: try need(.hadaW2B))
        }
        if parts.keys.contains(where: { $0.rawValue.hasPrefix("lokr") }) {
            func factor(_ whole: LoRAPart, _ a: LoRAPart, _ b: LoRAPart) throws(AddOnFileError) -> LoRAFactor {
                if let tensor = parts[whole] { return .whole(tensor.widened()) }
                return .pair(a: try need(a), b: try need(b))
            }
            return .kronecker(w1: try factor(.lokrW1, .lokrW1A, .lokrW1B), w2: try factor(.lokrW2, .lokrW2A, .lokrW2B))
        }
        if parts[.diff] != nil { return .full(try need(.diff)) }
        throw AddOnFileError(.missingPart, file: url.path, "layer \(layer.key) has only \(parts.keys.map(\.rawValue).sorted()); no change to apply")
    }
}
