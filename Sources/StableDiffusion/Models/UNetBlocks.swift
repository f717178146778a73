import Tensors

/// diffusers' ResnetBlock2D: two 3×3 convolutions with group norm and SiLU, the
/// time embedding added in between, and a 1×1 shortcut when the width changes.
struct ResnetBlock {
    let norm1: GroupNorm, conv1: Conv2d, timeProjection: Linear?, norm2: GroupNorm, conv2: Conv2d, shortcut: Conv2d?

    init(_ reader: WeightReader, groups: Int, epsilon: Float) throws {
        norm1 = try GroupNorm(reader, "norm1", groups: groups, epsilon: epsilon)
        conv1 = try Conv2d(reader, "conv1")
        timeProjection = reader.has("time_emb_proj.weight") ? try Linear(reader, "time_emb_proj", outputs: conv1.outputs) : nil
        norm2 = try GroupNorm(reader, "norm2", groups: groups, epsilon: epsilon)
        conv2 = try Conv2d(reader, "conv2")
        shortcut = reader.has("conv_shortcut.weight") ? try Conv2d(reader, "conv_shortcut") : nil
        if shortcut == nil && conv1.inputs != conv2.outputs {
            throw WeightsError(reader.source, "resnet block changes width \(conv1.inputs)→\(conv2.outputs) but has no conv_shortcut")
        }
    }

    /// x [N, C, H, W]; `time` is the already-activated time embedding [N, T].
    func callAsFunction(_ x: Tensor, time: Tensor?) -> Tensor {
        var h = conv1(norm1(x, silu: true))
        if let timeProjection, let time {
            let t = timeProjection(time)
            h = h + t.reshaped([t.shape[0], t.shape[1], 1, 1])
        }
        h = conv2(norm2(h, silu: true))
        h.add(shortcut.map { $0(x) } ?? x)
        return h
    }
}

/// diffusers' Transformer2DModel with BasicTransformerBlocks: self-attention,
/// cross-attention to the text, and a GEGLU feed-forward, between a group norm with
/// projections in and out (1×1 convolutions, or linear layers in SD 2.x).
struct SpatialTransformer {
    struct Block {
        let norm1: LayerNorm, selfAttention: MultiHeadAttention
        let norm2: LayerNorm, crossAttention: MultiHeadAttention
        let norm3: LayerNorm, feedForwardIn: Linear, feedForwardOut: Linear
    }

    let norm: GroupNorm
    let projectIn: Linear, projectOut: Linear
    let blocks: [Block]

    init(_ reader: WeightReader, heads: Int, groups: Int) throws {
        norm = try GroupNorm(reader, "norm", groups: groups, epsilon: 1e-6)
        // 1×1 convolutions and linear layers are the same product; keep them as linear.
        func dense(_ name: String) throws -> Linear {
            let weight = try reader.scope(name).stored("weight")
            guard weight.rank == 4 else { return try Linear(reader, name) }
            return Linear(
                weight: weight.reshaped([weight.shape[0], weight.shape[1]]),
                bias: try reader.scope(name).tensor("bias", shape: [weight.shape[0]]))
        }
        projectIn = try dense("proj_in")
        projectOut = try dense("proj_out")
        var blocks: [Block] = []
        var index = 0
        while reader.has("transformer_blocks.\(index).norm1.weight") {
            let block = reader.scope("transformer_blocks.\(index)")
            blocks.append(
                Block(
                    norm1: try LayerNorm(block, "norm1"), selfAttention: try MultiHeadAttention(diffusers: block.scope("attn1"), heads: heads),
                    norm2: try LayerNorm(block, "norm2"), crossAttention: try MultiHeadAttention(diffusers: block.scope("attn2"), heads: heads),
                    norm3: try LayerNorm(block, "norm3"), feedForwardIn: try Linear(block, "ff.net.0.proj"),
                    feedForwardOut: try Linear(block, "ff.net.2")))
            index += 1
        }
        guard !blocks.isEmpty else { throw WeightsError(reader.source, "spatial transformer without transformer blocks") }
        self.blocks = blocks
    }

    /// x [N, C, H, W], context [N, M, Cc]; `mergeRatio` > 0 merges that share of the self-attention's tokens
    /// (`TokenMerge`, ToMe for SD), 0 runs the full computation.
    func callAsFunction(_ x: Tensor, context: Tensor, mergeRatio: Double = 0) -> Tensor {
        let (n, c, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var h = norm(x).reshaped([n, c, height * width]).linearFromChannels(weight: projectIn.weight, bias: projectIn.bias)
        for block in blocks {
            if mergeRatio > 0, let merge = TokenMerge(metric: h, width: width, height: height, ratio: mergeRatio) {
                h.add(merge.unmerge(block.selfAttention(merge.merge(block.norm1(h)))))
            } else {
                h.add(block.selfAttention(block.norm1(h)))
            }
            h.add(block.crossAttention(block.norm2(h), context: context))
            h.add(block.feedForwardOut(block.feedForwardIn(block.norm3(h)).geglu()))
        }
        return h.linearToChannels(weight: projectOut.weight, bias: projectOut.bias, residual: x)
    }
}

/// A stride-2 3×3 convolution (diffusers' Downsample2D with padding 1).
struct Downsample {
    let conv: Conv2d

    init(_ reader: WeightReader) throws {
        conv = try Conv2d(reader, "conv", stride: 2, padding: 1)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { conv(x) }
}

/// Nearest-neighbour 2× upsampling followed by a 3×3 convolution.
struct Upsample {
    let conv: Conv2d

    init(_ reader: WeightReader) throws {
        conv = try Conv2d(reader, "conv")
    }

    func callAsFunction(_ x: Tensor) -> Tensor { conv(x.upsampledNearest2x()) }
}
