import Tensors

/// One residual block of the tiny autoencoder (diffusers' `AutoencoderTinyBlock`): three 3×3 convolutions with ReLUs
/// between them, plus the input (through a 1×1 convolution when the widths differ), then a ReLU.
struct TinyBlock {
    let first: Conv2d, second: Conv2d, third: Conv2d
    let skip: Conv2d?

    init(_ reader: WeightReader) throws {
        first = try Conv2d(reader, "conv.0")
        second = try Conv2d(reader, "conv.2")
        third = try Conv2d(reader, "conv.4")
        skip = reader.has("skip.weight") ? try Conv2d(reader, "skip", bias: false) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var out = third(second(first(x).relu()).relu())
        out.add(skip.map { $0(x) } ?? x)
        return out.relu()
    }
}

/// A step of the tiny autoencoder's sequential encoder or decoder.
enum TinyLayer {
    /// A convolution (stride 2 in the encoder's downsampling steps).
    case conv(Conv2d)
    /// A residual block.
    case block(TinyBlock)
    /// A ReLU (after the decoder's first convolution).
    case relu
    /// Nearest-neighbour upsampling by the decoder's factor.
    case upsample

    func callAsFunction(_ x: Tensor, upsampling factor: Int) -> Tensor {
        switch self {
        case .conv(let conv): return conv(x)
        case .block(let block): return block(x)
        case .relu: return x.relu()
        case .upsample: return x.upsampledNearest(by: factor)
        }
    }
}

/// TAESD and TAESDXL: diffusers' `AutoencoderTiny`, a distilled autoencoder of plain convolutions that maps the
/// UNet's latents to pixels (and back) in a fraction of the full VAE's time, at a lower quality. Used for live
/// previews and as `--vae taesd`.
///
/// Its latents are the UNet's own (diffusers' `scaling_factor` is 1.0); `latent_magnitude` and `latent_shift` only
/// matter to diffusers' 8-bit latent storage (`scaleLatents`), never to `encode` or `decode`.
/// The structure is read from the weights' names (blocks per level, where the encoder downsamples, where the
/// decoder upsamples), so the diffusers layout and madebyollin's single files build the same network.
public struct TinyAutoencoder {
    /// The settings read beside the weights (diffusers' defaults for single files).
    public let config: TinyAutoencoderConfig
    let encoder: [TinyLayer]
    let decoder: [TinyLayer]

    /// Builds the network from weights named as diffusers names them (`encoder.layers.N…`, `decoder.layers.N…`);
    /// either half may be missing (a decoder-only file), but not both.
    public init(config: TinyAutoencoderConfig = .init(), weights: [String: Tensor], source: String = "taesd") throws {
        self.config = config
        let reader = WeightReader(weights, source: source)
        encoder = try TinyAutoencoder.layers(reader.scope("encoder.layers"), decoder: false, keys: weights.keys, prefix: "encoder.layers.")
        decoder = try TinyAutoencoder.layers(reader.scope("decoder.layers"), decoder: true, keys: weights.keys, prefix: "decoder.layers.")
        guard !encoder.isEmpty || !decoder.isEmpty else {
            throw WeightsError(source, "no encoder.layers.* or decoder.layers.* tensors: this is not a TAESD (AutoencoderTiny) file")
        }
        if let latents = convs(decoder).first?.inputs, latents != config.latentChannels {
            throw WeightsError(source, "the decoder takes \(latents) latent channels, the config says \(config.latentChannels)")
        }
    }

    /// Whether the weights held a decoder.
    public var canDecode: Bool { !decoder.isEmpty }
    /// Whether the weights held an encoder.
    public var canEncode: Bool { !encoder.isEmpty }

    /// Pixels per latent along each side: the decoder's upsampling factor to the power of its upsampling steps.
    public var downscaleFactor: Int {
        let steps = decoder.filter { if case .upsample = $0 { return true } else { return false } }.count
        var factor = 1
        for _ in 0..<steps { factor *= config.upsamplingScalingFactor }
        return factor
    }

    /// Pixels [N, 3, f·H, f·W] (about [-1, 1]) for latents [N, C, H, W] as the UNet sees them (divided by the config's
    /// scaling factor, 1 for TAESD): `tanh(x/3)·3` through the decoder, then [0, 1] mapped to [-1, 1], as diffusers.
    public func decode(_ latents: Tensor) -> Tensor {
        precondition(canDecode, "this TAESD file has no decoder")
        let magnitude = Float(3)
        var h = latents.map { fastTanh($0 / magnitude) * magnitude }
        for layer in decoder { h = layer(h, upsampling: config.upsamplingScalingFactor) }
        return h.map { $0 * 2 - 1 }
    }

    /// Latents [N, C, H/f, W/f] as the UNet sees them for pixels [N, 3, H, W] in [-1, 1] (mapped to [0, 1] first, the
    /// TAESD convention, as diffusers).
    public func encode(_ pixels: Tensor) -> Tensor {
        precondition(canEncode, "this TAESD file has no encoder")
        var h = pixels.map { ($0 + 1) / 2 }
        for layer in encoder { h = layer(h, upsampling: config.upsamplingScalingFactor) }
        return h
    }

    /// The network's sequence of layers from the indices under `prefix` (the scope `reader` reads): an index with
    /// `conv.0.weight` is a block, one with `weight` a convolution, a missing one a ReLU (the decoder's second
    /// layer) or an upsampling. The encoder's convolutions between the first and the last have stride 2.
    static func layers(_ reader: WeightReader, decoder: Bool, keys: Dictionary<String, Tensor>.Keys, prefix: String) throws -> [TinyLayer] {
        let indices = Set(
            keys.compactMap { key -> Int? in
                guard key.hasPrefix(prefix) else { return nil }
                return Int(key.dropFirst(prefix.count).prefix { $0 != "." })
            })
        guard let last = indices.max() else { return [] }
        var layers: [TinyLayer] = []
        var convCount = 0
        let encoderConvs = indices.filter { reader.has("\($0).weight") }.count
        for index in 0...last {
            if reader.has("\(index).conv.0.weight") {
                layers.append(.block(try TinyBlock(reader.scope("\(index)"))))
            } else if reader.has("\(index).weight") {
                let strided = !decoder && convCount > 0 && convCount < encoderConvs - 1
                let bias = reader.has("\(index).bias")
                layers.append(.conv(try Conv2d(reader, "\(index)", stride: strided ? 2 : 1, padding: 1, bias: bias)))
                convCount += 1
            } else if decoder {
                layers.append(index == 1 ? .relu : .upsample)
            } else {
                throw WeightsError(reader.source, "the encoder has no layer \(index) (\(prefix)\(index).weight or .conv.0.weight)")
            }
        }
        return layers
    }
}

/// The convolutions of a layer sequence, in order.
private func convs(_ layers: [TinyLayer]) -> [Conv2d] {
    layers.compactMap { if case .conv(let conv) = $0 { return conv } else { return nil } }
}

/// What diffusers' `AutoencoderTiny` config says that the network's weights do not: the latent width, the upsampling
/// factor and the latent scaling. Single files (madebyollin's) get diffusers' defaults, which are TAESD's.
public struct TinyAutoencoderConfig: Codable, Equatable, Sendable {
    /// Latent channels (4 for TAESD and TAESDXL).
    public var latentChannels = 4
    /// The decoder's nearest-neighbour upsampling factor per step.
    public var upsamplingScalingFactor = 2
    /// Latents the UNet sees are these latents times this (1.0 for TAESD).
    public var scalingFactor: Double = 1
    /// The 8-bit latent storage's range (`scaleLatents`): latents / (2·magnitude) + shift, clamped to [0, 1].
    public var latentMagnitude: Double = 3
    /// The 8-bit latent storage's offset.
    public var latentShift: Double = 0.5

    /// TAESD's settings (diffusers' defaults).
    public init() {}

    enum CodingKeys: String, CodingKey {
        case latentChannels = "latent_channels"
        case upsamplingScalingFactor = "upsampling_scaling_factor"
        case scalingFactor = "scaling_factor"
        case latentMagnitude = "latent_magnitude"
        case latentShift = "latent_shift"
        case activation = "act_fn"
        case upsampleMode = "upsample_fn"
    }

    /// Reads diffusers' config.json; an activation other than ReLU or an upsampling other than nearest is refused.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TinyAutoencoderConfig()
        latentChannels = try c.decodeIfPresent(Int.self, forKey: .latentChannels) ?? d.latentChannels
        upsamplingScalingFactor = try c.decodeIfPresent(Int.self, forKey: .upsamplingScalingFactor) ?? d.upsamplingScalingFactor
        scalingFactor = try c.decodeIfPresent(Double.self, forKey: .scalingFactor) ?? d.scalingFactor
        latentMagnitude = try c.decodeIfPresent(Double.self, forKey: .latentMagnitude) ?? d.latentMagnitude
        latentShift = try c.decodeIfPresent(Double.self, forKey: .latentShift) ?? d.latentShift
        for (key, supported) in [(CodingKeys.activation, "relu"), (.upsampleMode, "nearest")] {
            if let value = try c.decodeIfPresent(String.self, forKey: key), value != supported {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: c, debugDescription: "\(key.rawValue) \(value) is not supported (TAESD uses \(supported))")
            }
        }
        guard upsamplingScalingFactor >= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .upsamplingScalingFactor, in: c, debugDescription: "must be at least 1")
        }
    }

    /// Writes the fields this type reads.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(latentChannels, forKey: .latentChannels)
        try c.encode(upsamplingScalingFactor, forKey: .upsamplingScalingFactor)
        try c.encode(scalingFactor, forKey: .scalingFactor)
        try c.encode(latentMagnitude, forKey: .latentMagnitude)
        try c.encode(latentShift, forKey: .latentShift)
    }
}
