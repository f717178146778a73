import Tensors

extension ModelWeights {
    /// A model of the given configs (default: SD 1.5's UNet, CLIP ViT-L/14 and VAE) with random
    /// weights under the names diffusers and transformers give them, for benchmarks that must not
    /// need a download. Weights are uniform in ±1/√fan-in (norms: 1 and 0), so activations stay
    /// in range and no denormals slow the arithmetic down. They are stored as `element` (half precision by default,
    /// as real downloads are, so that a benchmark's memory is a real model's).
    public static func random(
        unet: UNetConfig = UNetConfig(), vae: VAEConfig = VAEConfig(),
        textEncoder: TextEncoderConfig = TextEncoderConfig(), seed: UInt64 = 1, element: ElementType = .float16
    ) -> ModelWeights {
        var generator = RandomWeightGenerator(seed: seed, element: element)
        return ModelWeights(
            family: .sd1, unetConfig: unet, unet: generator.unet(unet), vaeConfig: vae, vae: generator.vae(vae),
            textEncoderConfig: textEncoder, textEncoder: generator.textEncoder(textEncoder),
            schedulerConfig: SchedulerConfig(), padTokenID: 49407)
    }
}

/// Names, shapes and random values of every parameter of the three networks.
struct RandomWeightGenerator {
    private var state: UInt64
    private let element: ElementType
    var tensors: [String: Tensor] = [:]
    /// One tensor's values before they are rounded to `element`, reused (Float32 tensors would fill the buffer pool).
    private var staging: [Float] = []

    init(seed: UInt64, element: ElementType) {
        state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        self.element = element
    }

    /// A uniform tensor in ±1/√fanIn (xorshift; values need only be plausible, not reproducible elsewhere).
    mutating func add(_ name: String, _ shape: [Int], fanIn: Int? = nil) {
        let bound = 1 / Float(fanIn ?? shape.dropFirst().reduce(1, *)).squareRoot()
        store(name, shape) { values, state in
            for i in values.indices {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                values[i] = (Float(state >> 40) / Float(1 << 24) * 2 - 1) * bound
            }
        }
    }

    private mutating func constant(_ name: String, _ shape: [Int], _ value: Float) {
        store(name, shape) { values, _ in values.update(repeating: value) }
    }

    /// Fills `shape`'s count of staged values with `fill` and stores them as `element`.
    private mutating func store(_ name: String, _ shape: [Int], _ fill: (UnsafeMutableBufferPointer<Float>, inout UInt64) -> Void) {
        let count = shape.reduce(1, *)
        if staging.count < count { staging = [Float](repeating: 0, count: count) }
        var state = self.state
        let element = self.element
        tensors[name] = staging.withUnsafeMutableBufferPointer { buffer in
            let values = UnsafeMutableBufferPointer(rebasing: buffer[..<count])
            fill(values, &state)
            return Tensor(shape: shape, element: element, narrowing: UnsafeBufferPointer(values))
        }
        self.state = state
    }

    private mutating func norm(_ name: String, _ channels: Int) {
        constant(name + ".weight", [channels], 1)
        constant(name + ".bias", [channels], 0)
    }

    mutating func linear(_ name: String, _ inputs: Int, _ outputs: Int, bias: Bool = true) {
        add(name + ".weight", [outputs, inputs])
        if bias { add(name + ".bias", [outputs], fanIn: inputs) }
    }

    private mutating func conv(_ name: String, _ inputs: Int, _ outputs: Int, kernel: Int) {
        add(name + ".weight", [outputs, inputs, kernel, kernel])
        add(name + ".bias", [outputs], fanIn: inputs * kernel * kernel)
    }

    private mutating func resnet(_ name: String, _ inputs: Int, _ outputs: Int, timeChannels: Int?) {
        norm(name + ".norm1", inputs)
        conv(name + ".conv1", inputs, outputs, kernel: 3)
        if let timeChannels { linear(name + ".time_emb_proj", timeChannels, outputs) }
        norm(name + ".norm2", outputs)
        conv(name + ".conv2", outputs, outputs, kernel: 3)
        if inputs != outputs { conv(name + ".conv_shortcut", inputs, outputs, kernel: 1) }
    }

    private mutating func transformer(_ name: String, _ channels: Int, context: Int, layers: Int, linearProjection: Bool) {
        norm(name + ".norm", channels)
        if linearProjection { linear(name + ".proj_in", channels, channels) } else { conv(name + ".proj_in", channels, channels, kernel: 1) }
        for layer in 0..<layers {
            let block = "\(name).transformer_blocks.\(layer)"
            for (attention, keys) in [("attn1", channels), ("attn2", context)] {
                linear("\(block).\(attention).to_q", channels, channels, bias: false)
                linear("\(block).\(attention).to_k", keys, channels, bias: false)
                linear("\(block).\(attention).to_v", keys, channels, bias: false)
                linear("\(block).\(attention).to_out.0", channels, channels)
            }
            for index in 1...3 { norm("\(block).norm\(index)", channels) }
            linear("\(block).ff.net.0.proj", channels, channels * 8)
            linear("\(block).ff.net.2", channels * 4, channels)
        }
        if linearProjection { linear(name + ".proj_out", channels, channels) } else { conv(name + ".proj_out", channels, channels, kernel: 1) }
    }

    mutating func unet(_ config: UNetConfig) -> [String: Tensor] {
        tensors = [:]
        let widths = config.blockOutChannels
        let time = widths[0] * 4
        let levels = widths.count
        conv("conv_in", config.inChannels, widths[0], kernel: 3)
        linear("time_embedding.linear_1", widths[0], time)
        linear("time_embedding.linear_2", time, time)
        var channels = widths[0]
        for level in 0..<levels {
            let output = widths[level]
            let cross = config.downBlockTypes[level].hasPrefix("CrossAttn")
            for layer in 0..<config.layersPerBlock {
                resnet("down_blocks.\(level).resnets.\(layer)", layer == 0 ? channels : output, output, timeChannels: time)
                if cross {
                    transformer(
                        "down_blocks.\(level).attentions.\(layer)", output, context: config.crossAttentionDim,
                        layers: config.transformerLayersPerBlock.value(at: level), linearProjection: config.useLinearProjection)
                }
            }
            if level < levels - 1 { conv("down_blocks.\(level).downsamplers.0.conv", output, output, kernel: 3) }
            channels = output
        }
        let bottom = widths[levels - 1]
        resnet("mid_block.resnets.0", bottom, bottom, timeChannels: time)
        transformer(
            "mid_block.attentions.0", bottom, context: config.crossAttentionDim,
            layers: config.transformerLayersPerBlock.value(at: levels - 1), linearProjection: config.useLinearProjection)
        resnet("mid_block.resnets.1", bottom, bottom, timeChannels: time)
        let reversed = Array(widths.reversed())
        var previous = bottom
        for level in 0..<levels {
            let output = reversed[level]
            let input = reversed[min(level + 1, levels - 1)]
            let cross = config.upBlockTypes[level].hasPrefix("CrossAttn")
            for layer in 0...config.layersPerBlock {
                let skip = layer == config.layersPerBlock ? input : output
                resnet("up_blocks.\(level).resnets.\(layer)", (layer == 0 ? previous : output) + skip, output, timeChannels: time)
                if cross {
                    transformer(
                        "up_blocks.\(level).attentions.\(layer)", output, context: config.crossAttentionDim,
                        layers: config.transformerLayersPerBlock.value(at: levels - 1 - level),
                        linearProjection: config.useLinearProjection)
                }
            }
            if level < levels - 1 { conv("up_blocks.\(level).upsamplers.0.conv", output, output, kernel: 3) }
            previous = output
        }
        if config.isXL, let inputs = config.projectionClassEmbeddingsInputDim {
            linear("add_embedding.linear_1", inputs, time)
            linear("add_embedding.linear_2", time, time)
        }
        norm("conv_norm_out", widths[0])
        conv("conv_out", widths[0], config.outChannels, kernel: 3)
        return tensors
    }

    private mutating func vaeMiddle(_ side: String, _ channels: Int) {
        resnet("\(side).mid_block.resnets.0", channels, channels, timeChannels: nil)
        norm("\(side).mid_block.attentions.0.group_norm", channels)
        for projection in ["to_q", "to_k", "to_v", "to_out.0"] {
            linear("\(side).mid_block.attentions.0.\(projection)", channels, channels)
        }
        resnet("\(side).mid_block.resnets.1", channels, channels, timeChannels: nil)
    }

    mutating func vae(_ config: VAEConfig) -> [String: Tensor] {
        tensors = [:]
        let widths = config.blockOutChannels
        let levels = widths.count
        let latent = config.latentChannels
        conv("encoder.conv_in", config.inChannels, widths[0], kernel: 3)
        var channels = widths[0]
        for level in 0..<levels {
            for layer in 0..<config.layersPerBlock {
                resnet("encoder.down_blocks.\(level).resnets.\(layer)", layer == 0 ? channels : widths[level], widths[level], timeChannels: nil)
            }
            if level < levels - 1 { conv("encoder.down_blocks.\(level).downsamplers.0.conv", widths[level], widths[level], kernel: 3) }
            channels = widths[level]
        }
        vaeMiddle("encoder", channels)
        norm("encoder.conv_norm_out", channels)
        conv("encoder.conv_out", channels, 2 * latent, kernel: 3)
        if config.useQuantConv { conv("quant_conv", 2 * latent, 2 * latent, kernel: 1) }
        if config.usePostQuantConv { conv("post_quant_conv", latent, latent, kernel: 1) }
        let reversed = Array(widths.reversed())
        conv("decoder.conv_in", latent, reversed[0], kernel: 3)
        vaeMiddle("decoder", reversed[0])
        channels = reversed[0]
        for level in 0..<levels {
            for layer in 0...config.layersPerBlock {
                resnet("decoder.up_blocks.\(level).resnets.\(layer)", layer == 0 ? channels : reversed[level], reversed[level], timeChannels: nil)
            }
            if level < levels - 1 { conv("decoder.up_blocks.\(level).upsamplers.0.conv", reversed[level], reversed[level], kernel: 3) }
            channels = reversed[level]
        }
        norm("decoder.conv_norm_out", channels)
        conv("decoder.conv_out", channels, config.outChannels, kernel: 3)
        return tensors
    }

    mutating func textEncoder(_ config: TextEncoderConfig) -> [String: Tensor] {
        tensors = [:]
        let width = config.hiddenSize
        add("embeddings.token_embedding.weight", [config.vocabSize, width], fanIn: 1)
        add("embeddings.position_embedding.weight", [config.maxPositionEmbeddings, width], fanIn: 1)
        for layer in 0..<config.numHiddenLayers {
            let name = "encoder.layers.\(layer)"
            for projection in ["q_proj", "k_proj", "v_proj", "out_proj"] { linear("\(name).self_attn.\(projection)", width, width) }
            norm("\(name).layer_norm1", width)
            norm("\(name).layer_norm2", width)
            linear("\(name).mlp.fc1", width, config.intermediateSize)
            linear("\(name).mlp.fc2", config.intermediateSize, width)
        }
        norm("final_layer_norm", width)
        return tensors
    }
}
