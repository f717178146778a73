import Foundation
import Tensors

/// Placeholder until the restricted unpickler lands (being built on the `pickle` branch).
public enum TorchCheckpoint {
    /// Loads a `.ckpt` state dict.
    public static func load(_ url: URL) throws -> [String: Tensor] {
        throw WeightsError(url.path, ".ckpt loading is not available in this build")
    }
}
