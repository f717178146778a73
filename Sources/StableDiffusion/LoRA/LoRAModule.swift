import Tensors

/// Which network of a model a LoRA layer patches.
public enum LoRAComponent: String, Sendable, CaseIterable {
    /// The UNet.
    case unet
    /// The first (SD 1.x/2.x: the only) text encoder.
    case textEncoder
    /// SDXL's second text encoder (OpenCLIP ViT-bigG).
    case textEncoder2
}

/// How one layer's weight change is stored: a low-rank pair (LoRA, LoCon), a Hadamard product of two (LoHa), a
/// Kronecker product (LoKr), or the full difference.
public enum LoRADelta {
    /// ΔW = up · down (kohya `lora_up`/`lora_down`, PEFT `lora_B`/`lora_A`); a convolution's down carries its kernel
    /// and its up is 1×1, or the down is 1×1 and the up carries the kernel.
    case lowRank(down: Tensor, up: Tensor)
    /// LyCORIS LoHa: ΔW = (w1a · w1b) ⊙ (w2a · w2b).
    case hadamard(w1a: Tensor, w1b: Tensor, w2a: Tensor, w2b: Tensor)
    /// LyCORIS LoKr: ΔW = w1 ⊗ w2, each factor stored whole or as a low-rank pair (a · b).
    case kronecker(w1: LoRAFactor, w2: LoRAFactor)
    /// ΔW given whole (LyCORIS `diff`).
    case full(Tensor)

    /// The rank the web UI divides alpha by: the inner size of the low-rank part (nil: no scaling by alpha).
    var rank: Int? {
        switch self {
        case .lowRank(let down, _): return down.shape[0]
        case .hadamard(_, let w1b, _, _): return w1b.shape[0]
        case .kronecker(let w1, let w2): return w2.rank ?? w1.rank
        case .full: return nil
        }
    }
}

/// One factor of a LoKr product: a whole matrix, or a low-rank pair a · b.
public enum LoRAFactor {
    /// The factor itself.
    case whole(Tensor)
    /// The factor as a [rows, r] · [r, …] product.
    case pair(a: Tensor, b: Tensor)

    /// The inner size of a pair; nil for a whole factor.
    var rank: Int? {
        if case .pair(_, let b) = self { return b.shape[0] }
        return nil
    }
}

/// One layer of a LoRA file, mapped onto the model: which network and weight it changes, how, and its alpha.
public struct LoRAModule {
    /// The network it patches.
    public var component: LoRAComponent
    /// The weight it changes, as the engine names it (diffusers' names; text encoders without `text_model.`).
    public var target: String
    /// The change.
    public var delta: LoRADelta
    /// The trained alpha; the change is scaled by alpha / rank (1 when the file has no alpha).
    public var alpha: Float?
    /// The file's key for this layer, for messages.
    public var key: String

    /// alpha / rank as the web UI computes it, 1 without an alpha.
    public var scale: Float {
        guard let alpha, let rank = delta.rank, rank > 0 else { return 1 }
        return alpha / Float(rank)
    }
}
