import Tensors

extension ModelWeights {
    /// The bytes the networks' weights take as held: two an element for halves, four for Float32. A pipeline built
    /// from them adds little (its norms and biases widened) besides one layer's widened weights while it runs.
    public var residentBytes: Int {
        [unet, vae, textEncoder, textEncoder2?.weights ?? [:]].reduce(0) { total, tensors in
            tensors.values.reduce(total) { $0 + $1.count * $1.element.byteCount }
        }
    }
}
