import Foundation
import Tensors

/// ControlNetModel: a trainable copy of the UNet's encoder that reads a control
/// image (edges, depth, pose, …) and returns residuals for the UNet's skips.
public struct ControlNet {
    /// The settings it was built with.
    public let config: ControlNetConfig
    let encoder: UNet.Encoder
    let embedding: [Conv2d]
    let zeroConvolutions: [Conv2d]
    let middleConvolution: Conv2d
    /// The Vulkan device its forward runs on (nil: the CPU); inputs move there and results back, weights are copied
    /// to it as float16 on first use.
    public var device: VulkanDevice?

    /// Builds a ControlNet from weights with diffusers' names.
    public init(config: ControlNetConfig, weights: [String: Tensor], source: String = "controlnet") throws {
        self.config = config
        let reader = WeightReader(weights, source: source)
        encoder = try UNet.Encoder(config: config.unet, reader: reader)
        let cond = reader.scope("controlnet_cond_embedding")
        var convs = [try Conv2d(cond, "conv_in")]
        for index in 0..<(2 * (config.conditioningEmbeddingOutChannels.count - 1)) {
            convs.append(try Conv2d(cond.scope("blocks"), "\(index)", stride: index % 2 == 1 ? 2 : 1, padding: 1))
        }
        convs.append(try Conv2d(cond, "conv_out"))
        embedding = convs
        var zero: [Conv2d] = []
        while reader.has("controlnet_down_blocks.\(zero.count).weight") {
            zero.append(try Conv2d(reader, "controlnet_down_blocks.\(zero.count)"))
        }
        zeroConvolutions = zero
        middleConvolution = try Conv2d(reader, "controlnet_mid_block")
    }

    /// Loads a diffusers ControlNet folder (`config.json` + `diffusion_pytorch_model.safetensors`).
    public static func load(_ folder: URL) throws -> ControlNet {
        let config = try ModelWeights.readJSON(ControlNetConfig.self, folder.appendingPathComponent("config.json"))
        let weights = try ModelWeights.componentWeights(folder, stem: "diffusion_pytorch_model", preferFP16: false)
        return try ControlNet(config: config, weights: weights, source: folder.path)
    }

    /// Residuals for the UNet from latents, timestep, text context (and SDXL's added conditioning) and a control
    /// image [B, 3, 8H, 8W] in [0, 1], each multiplied by `scale`.
    public func callAsFunction(
        _ sample: Tensor, timestep: Float, context: Tensor, added: AddedConditioning? = nil, control: Tensor, scale: Float
    ) -> ControlResiduals {
        if let device, sample.device !== device {
            let residuals = self(
                sample.moved(to: device), timestep: timestep, context: context.moved(to: device), added: added,
                control: control.moved(to: device), scale: scale)
            return ControlResiduals(down: residuals.down.map { $0.moved(to: nil) }, middle: residuals.middle.moved(to: nil))
        }
        var image = control
        if config.conditioningChannelOrder == "bgr" { image = Tensor.concat(image.chunked(3, axis: 1).reversed(), axis: 1) }
        var condition = image
        for (index, conv) in embedding.enumerated() {
            condition = conv(condition)
            if index < embedding.count - 1 { condition = condition.silu() }
        }
        let time = encoder.timeEmbedding(timestep, batch: sample.shape[0], added: added)
        let (skips, hidden) = encoder.encode(sample, time: time, context: context, added: condition)
        precondition(skips.count == zeroConvolutions.count, "ControlNet has \(zeroConvolutions.count) zero convolutions for \(skips.count) skips")
        let down = zip(skips, zeroConvolutions).map { $1($0).scaled(by: scale) }
        return ControlResiduals(down: down, middle: middleConvolution(encoder.middle(hidden, time: time, context: context)).scaled(by: scale))
    }
}
