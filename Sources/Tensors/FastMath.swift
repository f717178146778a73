// Scalar math written without library calls or trapping arithmetic, so that loops
// over unsafe pointers calling it vectorise; accurate to a few float32 ulps.

/// e^x (Cody–Waite range reduction and a degree-6 polynomial); relative error < 2e-7.
@inlinable @inline(__always)
public func fastExp(_ x: Float) -> Float {
    let clamped = Swift.min(Swift.max(x, -87.33), 88.7)
    // Adding 1.5·2^23 rounds to an integer and leaves it in the low mantissa bits.
    let shifted = clamped * 1.442_695_04 + 12_582_912.0
    let n = shifted - 12_582_912.0
    let r = clamped - n * 0.693_145_751_953_125 - n * 1.428_606_765_330_187e-6
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = p * r * r + r + 1
    let exponent = (Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000 &+ 127) &<< 23
    // n can reach 128 for x near 88.7; split the scale so that 2^n never overflows the exponent field.
    let half = Float(bitPattern: UInt32(bitPattern: (exponent &- (1 &<< 23))))
    return p * half * 2
}

/// The logistic function 1 / (1 + e^−x).
@inlinable @inline(__always)
public func fastSigmoid(_ x: Float) -> Float {
    1 / (1 + fastExp(-x))
}

/// tanh(x) via e^2x; absolute error < 3e-7.
@inlinable @inline(__always)
public func fastTanh(_ x: Float) -> Float {
    let clamped = Swift.min(Swift.max(x, -9), 9)
    let e = fastExp(2 * clamped)
    return (e - 1) / (e + 1)
}
