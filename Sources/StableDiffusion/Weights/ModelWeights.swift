import Foundation
import Tensors

/// Which text encoder (and so which model generation) a checkpoint carries.
public enum ModelFamily: String, Codable, Sendable {
    /// SD 1.x: OpenAI CLIP ViT-L/14, quick-GELU, pads prompts with the end token.
    case sd1
    /// SD 2.x: OpenCLIP ViT-H/14, GELU, penultimate layer, pads with `!` (id 0).
    case sd2
    /// SDXL base: CLIP ViT-L and OpenCLIP ViT-bigG side by side, pooled text and size conditioning.
    case sdxl
    /// SDXL refiner: OpenCLIP ViT-bigG alone, pooled text and aesthetic-score conditioning.
    case sdxlRefiner
}

/// One text encoder's weights with its settings and the pad id of its tokenizer.
public struct TextEncoderWeights {
    /// The encoder's settings.
    public var config: TextEncoderConfig
    /// Its weights (CLIP names without `text_model.`; `text_projection.weight` for CLIPTextModelWithProjection).
    public var weights: [String: Tensor]
    /// Token id that pads prompts to 77 (49407: the end token; 0: `!`).
    public var padTokenID: Int

    /// Wraps loaded weights.
    public init(config: TextEncoderConfig, weights: [String: Tensor], padTokenID: Int) {
        self.config = config
        self.weights = weights
        self.padTokenID = padTokenID
    }
}

/// A whole Stable Diffusion model as the engine runs it: typed configs and weights under diffusers' names, whatever
/// form the files came in. Weights stay as the files store them: float16 and bfloat16 resident as halves (the
/// products widen them a layer at a time), float32 as float32, so a model costs its file's size in memory.
public struct ModelWeights {
    /// SD 1.x, 2.x, SDXL base or SDXL refiner.
    public var family: ModelFamily
    /// The UNet's settings.
    public var unetConfig: UNetConfig
    /// The UNet's weights.
    public var unet: [String: Tensor]
    /// The VAE's settings.
    public var vaeConfig: VAEConfig
    /// The VAE's weights.
    public var vae: [String: Tensor]
    /// The text encoder's settings.
    public var textEncoderConfig: TextEncoderConfig
    /// The text encoder's weights (CLIP names without `text_model.`).
    public var textEncoder: [String: Tensor]
    /// Noise schedule and prediction type.
    public var schedulerConfig: SchedulerConfig
    /// Token id that pads prompts to 77 (49407 for SD 1.x, 0 for SD 2.x).
    public var padTokenID: Int
    /// SDXL base: the second text encoder (OpenCLIP ViT-bigG with its projection); the first is `textEncoder`. nil
    /// for SD 1.x/2.x and for the refiner, whose only encoder (the bigG one) is `textEncoder`.
    public var textEncoder2: TextEncoderWeights?
    /// SDXL: whether an empty negative prompt conditions on zeros (diffusers' `force_zeros_for_empty_prompt`: true
    /// for base models, false for the refiner) rather than on the encoded empty text.
    public var forceZerosForEmptyPrompt = false
    /// Keys of a single file that the engine does not use and did not read (EMA copies, scheduler
    /// buffers, the VAE's training loss, position ids), for a debug log.
    public var ignoredKeys: [String] = []

    /// True for inpainting UNets (latents + mask + masked-image latents = 9 channels).
    public var isInpainting: Bool { unetConfig.inChannels == 9 }

    /// Settings that checkpoints do not carry in their weights.
    public struct Options: Sendable {
        /// Forces v-prediction (SD 2.x 768-v models) or epsilon; nil: from config files.
        public var predictionType: String?
        /// Prefer `*.fp16.safetensors` files in diffusers folders when present. Off by default: a folder's plain
        /// file is the one diffusers loads without `variant="fp16"`, so images stay those of diffusers on the same
        /// folder. On, such a folder costs half the memory (its halves stay resident) for weights rounded to fp16.
        public var preferFP16Variant = false
        /// A VAE to use instead of the model's own (`loadVAE`'s forms), as people swap in fixed VAEs.
        public var vae: URL?

        /// No overrides.
        public init(predictionType: String? = nil, preferFP16Variant: Bool = false, vae: URL? = nil) {
            self.predictionType = predictionType
            self.preferFP16Variant = preferFP16Variant
            self.vae = vae
        }
    }

    /// Loads a diffusers folder, a single-file `.safetensors` or a `.ckpt`.
    public static func load(_ url: URL, options: Options = Options()) throws -> ModelWeights {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw WeightsError(url.path, "no such file or folder")
        }
        var model: ModelWeights
        if isDirectory.boolValue {
            model = try loadDiffusersFolder(url, options: options)
        } else {
            // Only the components' tensors are read: real downloads also carry an EMA copy of the
            // UNet, the training scheduler's buffers and more, in any dtype, which must not stop a load.
            let tensors: [String: Tensor]
            let ignored: [String]
            switch url.pathExtension.lowercased() {
            case "safetensors":
                let file = try SafeTensorsFile(url: url)
                tensors = try file.tensors(where: CheckpointKeys.isUsed)
                ignored = file.names.filter { !CheckpointKeys.isUsed($0) }
            case "ckpt", "pt", "pth":
                let contents = try TorchCheckpoint.read(url, keep: CheckpointKeys.isUsed)
                (tensors, ignored) = (contents.tensors, contents.skippedKeys.sorted())
            default:
                throw WeightsError(url.path, "unknown model format: expected a diffusers folder, .safetensors or .ckpt")
            }
            model = try fromSingleFile(tensors, path: url.path, sidecar: try SidecarConfig.load(for: url))
            model.ignoredKeys = ignored
        }
        if let prediction = options.predictionType { model.schedulerConfig.predictionType = prediction }
        if let vae = options.vae { try model.replaceVAE(with: vae, preferFP16: options.preferFP16Variant) }
        if !isDirectory.boolValue && model.family == .sd2 && model.schedulerConfig.predictionType == "v_prediction" {
            model.unetConfig.sampleSize = 96
        }
        return model
    }
}
