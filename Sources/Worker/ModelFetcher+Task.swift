import FarmModel
import Foundation
import Logging

extension ModelFetcher {
    /// Acquires every stored file `parameters` names (its model, LoRAs, VAE and upscaler), fetching the missing ones, and hands
    /// each to `renderer` under the name the task uses; returns the hashes to `release` after the render. When one
    /// cannot be had, those acquired are released and the host failure is thrown: another worker may have better luck.
    public func acquireFiles(of parameters: TaskParameters, for renderer: Renderer, metadata: Logger.Metadata = [:]) throws -> [String] {
        var held: [String] = []
        do {
            if let hash = parameters.modelSHA256 {
                let file = try acquire(hash, name: parameters.model, metadata: metadata)
                held.append(hash)
                renderer.useModelFile(file, forModel: parameters.model)
            }
            for (name, hash) in (parameters.storedAddOns?.loras ?? [:]).sorted(by: { $0.key < $1.key }) {
                let file = try acquire(hash, name: "LoRA \(name)", metadata: metadata)
                held.append(hash)
                renderer.useLoRAFile(file, forLoRA: name)
            }
            if let hash = parameters.storedAddOns?.vae, let name = parameters.vae {
                let file = try acquire(hash, name: "VAE \(name)", metadata: metadata)
                held.append(hash)
                renderer.useVAEFile(file, forVAE: name)
            }
            if let hash = parameters.storedAddOns?.upscaler, let name = parameters.upscaler {
                let file = try acquire(hash, name: "upscaler \(name)", metadata: metadata)
                held.append(hash)
                renderer.useUpscalerFile(file, forUpscaler: name)
            }
            return held
        } catch {
            for hash in held { release(hash) }
            throw error
        }
    }
}
