/// Whole-tensor reductions (the schedulers' and tests' needs), accumulated in Double.
extension Tensor {
    /// Sum of all elements.
    public func sum() -> Float {
        withUnsafeBufferPointer { values in Float(values.reduce(0.0) { $0 + Double($1) }) }
    }

    /// Mean of all elements.
    public func mean() -> Float { count == 0 ? 0 : sum() / Float(count) }

    /// Sample standard deviation (Bessel-corrected, as `torch.std`).
    public func standardDeviation() -> Float {
        guard count > 1 else { return 0 }
        let mean = Double(self.mean())
        let squares = withUnsafeBufferPointer { values in
            values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }
        }
        return Float((squares / Double(count - 1)).squareRoot())
    }

    /// Largest absolute value.
    public func absMax() -> Float {
        withUnsafeBufferPointer { values in values.reduce(0) { Swift.max($0, Swift.abs($1)) } }
    }

    /// Largest absolute difference to another tensor of the same shape.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                zip(a, b).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
            }
        }
    }
}
