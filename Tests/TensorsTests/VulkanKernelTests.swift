import Tensors
import Testing

// Each Vulkan kernel against the CPU operation it replaces, at shapes that are not multiples of the kernels' tiles
// and with batches > 1. Weights are float16 on the device; the CPU reference gets the same rounded weights, so the
// tolerance covers only Float32 sums in another order.

@Test func vulkanLinearMatchesCPU() {
    guard let device = vulkanTestDevice() else { return }
    for (rows, inputs, outputs) in [(1, 1, 1), (3, 17, 5), (33, 40, 19), (77, 64, 48)] {
        let x = randomTensor([rows, inputs], seed: 1)
        let weight = randomTensor([outputs, inputs], seed: 2)
        let bias = randomTensor([outputs], seed: 3)
        let cpu = x.linear(weight: halfRounded(weight), bias: bias)
        let gpu = device.upload(x).linear(weight: device.uploadWeight(weight), bias: device.upload(bias)).toHost()
        #expect(relativeError(gpu, cpu) < 1e-5, "linear \(rows)×\(inputs)→\(outputs)")
    }
    let batched = randomTensor([2, 7, 24], seed: 4)
    let weight = randomTensor([9, 24], seed: 5)
    let cpu = batched.linear(weight: halfRounded(weight))
    #expect(relativeError(device.upload(batched).linear(weight: device.uploadWeight(weight)).toHost(), cpu) < 1e-5)
}

@Test func vulkanConv2dMatchesCPU() {
    guard let device = vulkanTestDevice() else { return }
    // (batch, channels, height, width, out channels, kernel, stride, padding)
    let cases = [(1, 3, 7, 5, 4, 3, 1, 1), (2, 5, 9, 9, 6, 3, 2, 1), (2, 4, 6, 7, 3, 1, 1, 0), (1, 8, 8, 8, 17, 3, 1, 1), (2, 3, 5, 6, 2, 3, 2, 0)]
    for (batch, channels, height, width, outChannels, kernel, stride, padding) in cases {
        let x = randomTensor([batch, channels, height, width], seed: 6)
        let weight = randomTensor([outChannels, channels, kernel, kernel], seed: 7)
        let bias = randomTensor([outChannels], seed: 8)
        let cpu = x.conv2d(weight: halfRounded(weight), bias: bias, stride: stride, padding: padding)
        let gpu = device.upload(x).conv2d(
            weight: device.uploadWeight(weight), bias: device.upload(bias), stride: stride, padding: padding
        ).toHost()
        #expect(relativeError(gpu, cpu) < 1e-5, "conv2d \(x.shape) k\(kernel) s\(stride) p\(padding)")
    }
}

@Test func vulkanNormsAndSoftmaxMatchCPU() {
    guard let device = vulkanTestDevice() else { return }
    for (shape, groups) in [([2, 8, 5, 3], 4), ([1, 6, 7, 7], 3), ([2, 32, 4, 4], 32)] {
        let x = randomTensor(shape, seed: 9, scale: 3)
        let gamma = randomTensor([shape[1]], seed: 10)
        let beta = randomTensor([shape[1]], seed: 11)
        for silu in [false, true] {
            let cpu = x.groupNorm(groups: groups, weight: gamma, bias: beta, silu: silu)
            let gpu = device.upload(x).groupNorm(groups: groups, weight: device.upload(gamma), bias: device.upload(beta), silu: silu)
            #expect(relativeError(gpu.toHost(), cpu) < 1e-5, "group norm \(shape) groups \(groups) silu \(silu)")
        }
    }
    for shape in [[3, 7], [2, 5, 300], [1, 1, 1]] {
        let x = randomTensor(shape, seed: 12, scale: 4)
        let features = shape.last!
        let gamma = randomTensor([features], seed: 13)
        let beta = randomTensor([features], seed: 14)
        let cpu = x.layerNorm(weight: gamma, bias: beta)
        #expect(relativeError(device.upload(x).layerNorm(weight: device.upload(gamma), bias: device.upload(beta)).toHost(), cpu) < 1e-5)
        #expect(relativeError(device.upload(x).softmax().toHost(), x.softmax()) < 1e-5, "softmax \(shape)")
    }
}

@Test func vulkanAttentionMatchesCPU() {
    guard let device = vulkanTestDevice() else { return }
    // (batch, queries, keys, heads, head width, causal): keys not a multiple of the 16-key tile, cross attention,
    // heads wider than 128 (the wide kernel).
    for (batch, queries, keys, heads, dim, causal) in [
        (2, 33, 33, 2, 8, false), (1, 77, 77, 3, 16, true), (2, 70, 77, 2, 40, false), (1, 5, 1, 1, 4, false),
        (1, 20, 19, 2, 160, false), (1, 9, 9, 1, 512, false),
    ] {
        let q = randomTensor([batch, queries, heads * dim], seed: 15, scale: 2)
        let k = randomTensor([batch, keys, heads * dim], seed: 16, scale: 2)
        let v = randomTensor([batch, keys, heads * dim], seed: 17)
        let cpu = Tensor.attention(query: q, key: k, value: v, heads: heads, causal: causal)
        let gpu = DeviceTensor.attention(
            query: device.upload(q), key: device.upload(k), value: device.upload(v), heads: heads, causal: causal)
        #expect(relativeError(gpu.toHost(), cpu) < 1e-5, "attention q\(q.shape) k\(k.shape) heads \(heads) causal \(causal)")
    }
}

@Test func vulkanElementwiseMatchesCPU() {
    guard let device = vulkanTestDevice() else { return }
    let x = randomTensor([2, 3, 5, 7], seed: 18, scale: 5)
    let onDevice = device.upload(x)
    #expect(relativeError(onDevice.silu().toHost(), x.silu()) < 1e-6)
    #expect(relativeError(onDevice.gelu().toHost(), x.gelu()) < 1e-5)
    #expect(relativeError(onDevice.scaled(by: 0.18215).toHost(), x.scaled(by: 0.18215)) < 1e-6)
    let rows = randomTensor([4, 10], seed: 19, scale: 3)
    #expect(relativeError(device.upload(rows).geglu().toHost(), rows.geglu()) < 1e-5)
    let same = randomTensor([2, 3, 5, 7], seed: 20)
    let channel = randomTensor([3, 1, 1], seed: 21)
    let feature = randomTensor([7], seed: 22)
    #expect(relativeError((onDevice + device.upload(same)).toHost(), x + same) < 1e-6)
    #expect(relativeError((onDevice * device.upload(same)).toHost(), x * same) < 1e-6)
    #expect(relativeError((onDevice - device.upload(channel)).toHost(), x - channel) < 1e-6)
    #expect(relativeError((onDevice + device.upload(channel)).toHost(), x + channel) < 1e-6)
    #expect(relativeError((onDevice * device.upload(feature)).toHost(), x * feature) < 1e-6)
}

@Test func vulkanResamplingConcatAndTimestepsMatchCPU() {
    guard let device = vulkanTestDevice() else { return }
    let x = randomTensor([2, 3, 5, 4], seed: 23)
    for factor in [1, 2, 3] {
        #expect(device.upload(x).upsampledNearest(by: factor).toHost().scalars == x.upsampledNearest(by: factor).scalars)
    }
    for axis in 0..<4 {
        var otherShape = x.shape
        otherShape[axis] = 2
        let other = randomTensor(otherShape, seed: 24)
        let cpu = Tensor.concat([x, other, x], axis: axis)
        let gpu = DeviceTensor.concat([device.upload(x), device.upload(other), device.upload(x)], axis: axis)
        #expect(gpu.toHost().scalars == cpu.scalars, "concat along \(axis)")
    }
    for (dimension, flip, shift) in [(320, true, Float(0)), (33, false, Float(1)), (8, true, Float(1))] {
        let times: [Float] = [999, 500.5, 1, 0]
        let cpu = Tensor.timestepEmbedding(times, dimension: dimension, flipSinToCos: flip, downscaleFreqShift: shift)
        let gpu = device.timestepEmbedding(times, dimension: dimension, flipSinToCos: flip, downscaleFreqShift: shift)
        #expect(gpu.toHost().maxAbsDifference(cpu) < 1e-4, "timestep embedding \(dimension)")
    }
}

@Test func vulkanDispatchesChainWithoutReadingBack() {
    guard let device = vulkanTestDevice() else { return }
    // A small block (norm, SiLU, convolution, residual) recorded as one command stream and read once; more
    // dispatches than one descriptor pool holds, so the device also submits part-way and goes on recording.
    let x = randomTensor([1, 4, 6, 6], seed: 26)
    let weight = randomTensor([4, 4, 3, 3], seed: 27, scale: 0.3)
    let gamma = Tensor(repeating: 1, shape: [4])
    let beta = Tensor(zeros: [4])
    var cpu = x
    var gpu = device.upload(x)
    let (deviceWeight, deviceGamma, deviceBeta) = (device.uploadWeight(weight), device.upload(gamma), device.upload(beta))
    for _ in 0..<600 {
        cpu = cpu + cpu.groupNorm(groups: 2, weight: gamma, bias: beta, silu: true).conv2d(weight: halfRounded(weight), padding: 1)
        gpu = gpu + gpu.groupNorm(groups: 2, weight: deviceGamma, bias: deviceBeta, silu: true).conv2d(weight: deviceWeight, padding: 1)
    }
    #expect(relativeError(gpu.toHost(), cpu) < 1e-4)
}
