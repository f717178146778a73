import Foundation

/// The layers with weights on a Vulkan device: dense layers and convolutions (float16 weights, Float32 sums), the
/// normalisations. Each records one dispatch; shapes are checked as the CPU operations check them.
extension DeviceTensor {
    /// A dense layer as PyTorch stores it: self [..., in] · weightᵀ [out, in] + bias [out] (`Tensor.linear`).
    public func linear(weight: DeviceTensor, bias: DeviceTensor? = nil) -> DeviceTensor {
        let inputs = shape.last ?? 0
        ShapeCheck.linear(input: shape, weight: weight.shape)
        precondition(weight.element == .float16, "device weights are float16: upload them with uploadWeight")
        let outputs = weight.shape[0]
        let rows = count / max(inputs, 1)
        var outShape = shape
        outShape[rank - 1] = outputs
        let result = device.uninitialized(outShape)
        device.dispatch(
            "linear", buffers: [buffer, weight.buffer, device.optional(bias), result.buffer],
            push: [UInt32(rows), UInt32(outputs), UInt32(inputs), bias == nil ? 0 : 1],
            groups: ((outputs + 15) / 16, (rows + 15) / 16, 1))
        return result
    }

    /// 2-D convolution of NCHW input with weight [O, C, kh, kw] (`Tensor.conv2d`), as an implicit GEMM.
    public func conv2d(weight: DeviceTensor, bias: DeviceTensor? = nil, stride: Int = 1, padding: Int = 0) -> DeviceTensor {
        let (outHeight, outWidth) = ShapeCheck.conv2d(input: shape, weight: weight.shape, stride: stride, padding: padding)
        precondition(weight.element == .float16, "device weights are float16: upload them with uploadWeight")
        let (batch, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        let (outChannels, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let result = device.uninitialized([batch, outChannels, outHeight, outWidth])
        let push = [channels, height, width, outChannels, kh, kw, outHeight, outWidth, stride, padding, bias == nil ? 0 : 1]
        device.dispatch(
            "conv2d", buffers: [buffer, weight.buffer, device.optional(bias), result.buffer], push: push.map { UInt32($0) },
            groups: ((outHeight * outWidth + 15) / 16, (outChannels + 15) / 16, batch))
        return result
    }

    /// Group normalisation of NCHW maps (`Tensor.groupNorm`), optionally followed by SiLU.
    public func groupNorm(groups: Int, weight: DeviceTensor, bias: DeviceTensor, epsilon: Float = 1e-5, silu: Bool = false)
        -> DeviceTensor
    {
        let channels = shape[1]
        precondition(rank >= 2 && channels % groups == 0, "group norm: \(channels) channels do not split into \(groups) groups")
        let spatial = count / max(shape[0] * channels, 1)
        let result = device.uninitialized(shape)
        device.dispatch(
            "group_norm", buffers: [buffer, weight.buffer, bias.buffer, result.buffer],
            push: [UInt32(groups), UInt32(channels), UInt32(spatial), epsilon.bitPattern, silu ? 1 : 0],
            groups: (shape[0] * groups, 1, 1))
        return result
    }

    /// Layer normalisation over the last dimension (`Tensor.layerNorm`).
    public func layerNorm(weight: DeviceTensor, bias: DeviceTensor, epsilon: Float = 1e-5) -> DeviceTensor {
        let features = shape[rank - 1]
        ShapeCheck.layerNorm(features: features, weight: weight.count, bias: bias.count)
        let result = device.uninitialized(shape)
        device.dispatch(
            "layer_norm", buffers: [buffer, weight.buffer, bias.buffer, result.buffer],
            push: [UInt32(features), epsilon.bitPattern], groups: (count / max(features, 1), 1, 1))
        return result
    }

    /// Softmax over the last dimension (`Tensor.softmax`).
    public func softmax() -> DeviceTensor {
        let width = shape[rank - 1]
        let result = device.uninitialized(shape)
        device.dispatch("softmax", buffers: [buffer, result.buffer], push: [UInt32(width)], groups: (count / max(width, 1), 1, 1))
        return result
    }
}

extension VulkanDevice {
    /// `tensor`'s buffer, or a small placeholder bound where an optional operand (a bias) is absent.
    func optional(_ tensor: DeviceTensor?) -> DeviceBuffer { tensor?.buffer ?? DeviceBuffer(device: self, bytes: 16) }

    /// Workgroups of 256 invocations covering `count` elements, in two dimensions so that large tensors stay within
    /// every device's 65 535 workgroups per dimension (the shaders rebuild the flat index).
    static func flatGroups(_ count: Int) -> (x: Int, y: Int, z: Int) {
        let groups = (count + 255) / 256
        let x = min(groups, 65_535)
        return (x, x == 0 ? 0 : (groups + x - 1) / x, 1)
    }
}
