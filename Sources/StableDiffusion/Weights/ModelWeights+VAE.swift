import Foundation
import Tensors

/// VAEs on their own: the LDM layout of single files, and the `--vae` override that swaps a model's VAE for another
/// (a diffusers `vae` folder, a model folder's `vae/`, or a `.safetensors`/`.ckpt` in diffusers or LDM names, with or
/// without the `first_stage_model.` prefix).
extension ModelWeights {
    /// Replaces the VAE with the one at `url`. A folder's config (and so its scaling factor) comes with it; a single
    /// file's shapes are read from its weights and the model keeps its scaling factor, group-norm groups and sample
    /// size (which weights cannot show), as the web UIs do.
    public mutating func replaceVAE(with url: URL, preferFP16: Bool = false) throws {
        let (config, weights) = try Self.loadVAE(url, fallback: vaeConfig, preferFP16: preferFP16)
        guard config.latentChannels == vaeConfig.latentChannels else {
            throw WeightsError(url.path, "VAE has \(config.latentChannels) latent channels, the model's UNet works in \(vaeConfig.latentChannels)")
        }
        guard config.blockOutChannels.count == vaeConfig.blockOutChannels.count else {
            throw WeightsError(
                url.path,
                "VAE has \(config.blockOutChannels.count) levels (scale \(1 << (config.blockOutChannels.count - 1))), the model's has \(vaeConfig.blockOutChannels.count)"
            )
        }
        (vaeConfig, vae) = (config, weights)
    }

    /// A VAE's config and weights from a folder or a single file; a single file takes `fallback`'s scaling factor,
    /// group-norm groups and sample size (the tile size of a tiled decode).
    static func loadVAE(_ url: URL, fallback: VAEConfig, preferFP16: Bool) throws -> (VAEConfig, [String: Tensor]) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw WeightsError(url.path, "no such VAE file or folder")
        }
        if isDirectory.boolValue {
            let nested = url.appendingPathComponent("vae")
            let folder = FileManager.default.fileExists(atPath: nested.appendingPathComponent("config.json").path) ? nested : url
            let config = try readJSON(VAEConfig.self, folder.appendingPathComponent("config.json"))
            return (config, try componentWeights(folder, stem: "diffusion_pytorch_model", preferFP16: preferFP16))
        }
        let isVAEKey = { (key: String) in !key.hasSuffix("position_ids") && !key.contains("loss.") && !key.hasPrefix("model_ema.") }
        var tensors: [String: Tensor]
        switch url.pathExtension.lowercased() {
        case "safetensors": tensors = try SafeTensorsFile(url: url).tensors(where: isVAEKey)
        case "ckpt", "pt", "pth": tensors = try TorchCheckpoint.read(url, keep: isVAEKey).tensors
        default: throw WeightsError(url.path, "unknown VAE format: expected a diffusers folder, .safetensors or .ckpt")
        }
        if tensors.keys.contains(where: { $0.hasPrefix(CheckpointKeys.vaePrefix) }) {
            tensors = tensors.reduce(into: [:]) { result, entry in
                if entry.key.hasPrefix(CheckpointKeys.vaePrefix) { result[String(entry.key.dropFirst(CheckpointKeys.vaePrefix.count))] = entry.value }
            }
        }
        var (config, weights): (VAEConfig, [String: Tensor])
        if tensors.keys.contains(where: { $0.hasPrefix("decoder.up.") }) {
            (config, weights) = try ldmVAE(tensors, path: url.path)
        } else if tensors.keys.contains(where: { $0.hasPrefix("decoder.up_blocks.") }) {
            weights = tensors
            config = try inferredVAEConfig(tensors, path: url.path)
        } else {
            throw WeightsError(url.path, "holds no VAE weights (decoder.up.* or decoder.up_blocks.*)")
        }
        (config.scalingFactor, config.normNumGroups, config.sampleSize) = (fallback.scalingFactor, fallback.normNumGroups, fallback.sampleSize)
        return (config, weights)
    }

    /// An LDM VAE (`encoder.down.N.block.M.*`, prefix removed) under diffusers' names, with its config read from shapes.
    static func ldmVAE(_ raw: [String: Tensor], path: String) throws -> (VAEConfig, [String: Tensor]) {
        var vae: [String: Tensor] = [:]
        let levels = Set(
            raw.keys.compactMap { key -> Int? in
                guard key.hasPrefix("decoder.up.") else { return nil }
                return Int(key.dropFirst("decoder.up.".count).prefix { $0 != "." })
            }
        ).count
        for (key, tensor) in raw {
            guard let name = CheckpointKeys.vaeName(key, levels: levels) else { continue }
            // LDM keeps the VAE attention projections as 1×1 convolutions; diffusers as linear layers.
            let isProjection = name.contains("mid_block.attentions.0.to_") && tensor.rank == 4
            vae[name] = isProjection ? tensor.reshaped([tensor.shape[0], tensor.shape[1]]) : tensor
        }
        return (try inferredVAEConfig(vae, path: path), vae)
    }

    /// A VAE's settings read from its weights' shapes (diffusers names); the scaling factor stays SD's default.
    static func inferredVAEConfig(_ vae: [String: Tensor], path: String) throws -> VAEConfig {
        // Every shape read here is a convolution's weight; a damaged one is an error, not a crash.
        func shape(_ key: String) throws -> [Int] { try ModelWeights.shape(vae, key, rank: 4, path: path) }
        let levels = Set(
            vae.keys.compactMap { key -> Int? in
                guard key.hasPrefix("encoder.down_blocks.") else { return nil }
                return Int(key.dropFirst("encoder.down_blocks.".count).prefix { $0 != "." })
            }
        ).count
        var config = VAEConfig()
        config.blockOutChannels = try (0..<levels).map { try shape("encoder.down_blocks.\($0).resnets.0.conv1.weight")[0] }
        config.layersPerBlock = vae.keys.filter { $0.hasPrefix("encoder.down_blocks.0.resnets.") && $0.hasSuffix(".conv1.weight") }.count
        config.inChannels = try shape("encoder.conv_in.weight")[1]
        config.outChannels = try shape("decoder.conv_out.weight")[0]
        config.latentChannels = try shape("decoder.conv_in.weight")[1]
        config.useQuantConv = vae["quant_conv.weight"] != nil
        config.usePostQuantConv = vae["post_quant_conv.weight"] != nil
        return config
    }
}
