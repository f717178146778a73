import Tensors

extension TinyAutoencoder {
    /// TAESD's shapes (64 channels; encoder blocks 1, 3, 3, 3; decoder blocks 3, 3, 3, 1; 8× scale) with random
    /// weights under diffusers' names, stored as `element`: for benchmarks against the VAE that must not need a download.
    public static func random(seed: UInt64 = 2, element: ElementType = .float16) -> TinyAutoencoder {
        var generator = RandomWeightGenerator(seed: seed, element: element)
        // Built from well-formed names and shapes, so the only way it can throw is a bug here.
        return try! TinyAutoencoder(weights: generator.tinyAutoencoder(), source: "random TAESD")
    }
}

extension RandomWeightGenerator {
    /// diffusers' `AutoencoderTiny` with its default config.
    mutating func tinyAutoencoder(channels: Int = 64, latents: Int = 4) -> [String: Tensor] {
        tensors = [:]
        func conv(_ name: String, _ inputs: Int, _ outputs: Int, bias: Bool = true) {
            add(name + ".weight", [outputs, inputs, 3, 3])
            if bias { add(name + ".bias", [outputs], fanIn: inputs * 9) }
        }
        func block(_ name: String) {
            for index in [0, 2, 4] { conv("\(name).conv.\(index)", channels, channels) }
        }
        var index = 0
        func next() -> String {
            defer { index += 1 }
            return "\(index)"
        }
        for (level, blocks) in [1, 3, 3, 3].enumerated() {
            conv("encoder.layers.\(next())", level == 0 ? 3 : channels, channels, bias: level == 0)
            for _ in 0..<blocks { block("encoder.layers.\(next())") }
        }
        conv("encoder.layers.\(next())", channels, latents)
        index = 0
        conv("decoder.layers.\(next())", latents, channels)
        _ = next()  // ReLU
        for (level, blocks) in [3, 3, 3, 1].enumerated() {
            for _ in 0..<blocks { block("decoder.layers.\(next())") }
            if level < 3 { _ = next() }  // upsampling
            conv("decoder.layers.\(next())", channels, level < 3 ? channels : 3, bias: level == 3)
        }
        return tensors
    }
}

extension VAE {
    /// The VAE of `config` (default: SD 1.5's) with random weights stored as `element`, for benchmarks that need only
    /// the decoder's shapes.
    public static func random(config: VAEConfig = VAEConfig(), seed: UInt64 = 1, element: ElementType = .float16) -> VAE {
        var generator = RandomWeightGenerator(seed: seed, element: element)
        // Built from well-formed names and shapes, so the only way it can throw is a bug here.
        return try! VAE(config: config, weights: generator.vae(config))
    }
}
