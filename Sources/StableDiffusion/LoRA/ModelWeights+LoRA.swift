import Tensors

/// One LoRA as a render applies it: the file, its weight on the UNet and (the web UI's `<lora:name:te:unet>`) on the
/// text encoders.
public struct WeightedLoRA {
    /// The file.
    public var file: LoRAFile
    /// Multiplies the UNet's change (negative weights push away from what the LoRA learned).
    public var weight: Float
    /// Multiplies the text encoders' change; nil: `weight`.
    public var textWeight: Float?

    /// Weights one LoRA.
    public init(file: LoRAFile, weight: Float, textWeight: Float? = nil) {
        self.file = file
        self.weight = weight
        self.textWeight = textWeight
    }
}

/// Which weights the LoRAs changed, per network.
public struct LoRAReport: Equatable, Sendable {
    /// The patched weights of the UNet (diffusers' names, without `.weight`).
    public var unet: Set<String> = []
    /// The patched weights of the first text encoder.
    public var textEncoder: Set<String> = []
    /// The patched weights of SDXL's second text encoder.
    public var textEncoder2: Set<String> = []
    /// LoRA layers applied, over every file (a layer two files patch counts twice).
    public var layersApplied = 0

    /// Every patched weight.
    public var total: Int { unet.count + textEncoder.count + textEncoder2.count }
}

/// Applying LoRAs by patching the weights: W' = W + Σ weight · alpha/rank · ΔW, summed in Float32 and stored back in
/// the weight's own precision (halves stay halves). Only the patched layers get new storage; every other tensor is
/// shared with the unpatched model, so a patched model costs its changed layers, not a second model.
extension ModelWeights {
    /// This model with `loras` applied, and what they changed. Throws `AddOnFileError` naming the file for a layer
    /// that is not in this model or does not fit it; nothing is patched then.
    public func applying(_ loras: [WeightedLoRA]) throws(AddOnFileError) -> (weights: ModelWeights, report: LoRAReport) {
        var sums: [LoRAComponent: [String: Tensor]] = [:]
        var report = LoRAReport()
        for lora in loras {
            for module in try lora.file.modules(for: self) {
                let name = module.target + ".weight"
                guard let original = weights(of: module.component)[name] else { continue }
                let multiplier = (module.component == .unet ? lora.weight : lora.textWeight ?? lora.weight) * module.scale
                guard multiplier != 0 else { continue }
                let delta = try module.delta.weight(shape: original.shape, key: module.key, file: lora.file.url.path)
                if sums[module.component]?[name] == nil { sums[module.component, default: [:]][name] = original.widened() }
                sums[module.component]![name]!.add(delta, scaledBy: multiplier)
                report.layersApplied += 1
            }
        }
        var patched = self
        for (component, tensors) in sums {
            for (name, sum) in tensors {
                let original = weights(of: component)[name]!
                patched.setWeight(sum.narrowed(to: original.element), name, of: component)
                let layer = String(name.dropLast(".weight".count))
                switch component {
                case .unet: report.unet.insert(layer)
                case .textEncoder: report.textEncoder.insert(layer)
                case .textEncoder2: report.textEncoder2.insert(layer)
                }
            }
        }
        return (patched, report)
    }

    /// The weights of one network.
    func weights(of component: LoRAComponent) -> [String: Tensor] {
        switch component {
        case .unet: return unet
        case .textEncoder: return textEncoder
        case .textEncoder2: return textEncoder2?.weights ?? [:]
        }
    }

    private mutating func setWeight(_ tensor: Tensor, _ name: String, of component: LoRAComponent) {
        switch component {
        case .unet: unet[name] = tensor
        case .textEncoder: textEncoder[name] = tensor
        case .textEncoder2: textEncoder2?.weights[name] = tensor
        }
    }
}
