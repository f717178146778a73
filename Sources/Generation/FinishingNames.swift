/// A width and height in pixels (`W,H` on the command line and in specs, `WxH` in the `parameters` text).
public struct PixelSize: Equatable, Sendable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int

    /// Makes a size.
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `W,H` or `WxH` (numbers only: their range is the request's to check); nil for anything else.
    public init?(parsing text: String) {
        let separator: Character = text.contains(",") ? "," : "x"
        let parts = text.split(separator: separator, omittingEmptySubsequences: false).map { part in
            Int(String(part.filter { $0 != " " }))
        }
        guard parts.count == 2, let width = parts[0], let height = parts[1] else { return nil }
        self.init(width: width, height: height)
    }

    /// `W,H`, as `init(parsing:)` reads it and specs write it.
    public var text: String { "\(width),\(height)" }
}

/// How img2img fits an init image of another size than the render: the AUTOMATIC1111 web UI's four resize modes
/// (`modules/images.py` `resize_image`, and the latent upscale of `processing.py`), numbered as its API numbers them.
public enum ResizeMode: Int, CaseIterable, Sendable {
    /// Stretch the image to the render size (LANCZOS), whatever its aspect.
    case justResize = 0
    /// Scale to cover the render size, keeping the aspect, and crop the overflow equally on both sides.
    case cropAndResize = 1
    /// Scale to fit inside the render size, keeping the aspect, and fill the bands with the stretched edge rows or columns.
    case resizeAndFill = 2
    /// Encode the image at its own size and resize its latents (bilinear) to the render's.
    case latentUpscale = 3

    /// Parses a number 0...3 or a name (`just_resize`, `crop_and_resize`, `resize_and_fill`, `latent_upscale`, or the short
    /// `resize`, `crop`, `fill`, `latent`; any case, `-` or `_`); the error lists the choices.
    public init(parsing text: String) throws {
        let key = String(text.lowercased().map { $0 == "-" || $0 == " " ? "_" : $0 })
        if let number = Int(key), let mode = ResizeMode(rawValue: number) {
            self = mode
            return
        }
        let short: [String: ResizeMode] = ["resize": .justResize, "crop": .cropAndResize, "fill": .resizeAndFill, "latent": .latentUpscale]
        guard let mode = Self.allCases.first(where: { $0.name == key }) ?? short[key] else {
            throw InvalidGenerationRequest(
                .resizeMode, "must be 0...3 or a name (\(Self.allCases.map(\.name).joined(separator: ", "))), got \"\(text.prefix(40))\"")
        }
        self = mode
    }

    /// The mode's name in specs and on the command line.
    public var name: String {
        switch self {
        case .justResize: return "just_resize"
        case .cropAndResize: return "crop_and_resize"
        case .resizeAndFill: return "resize_and_fill"
        case .latentUpscale: return "latent_upscale"
        }
    }
}

/// How hires fix upscales the first pass's latents: `torch.nn.functional.interpolate` with `align_corners=False`,
/// as the web UI's latent upscalers call it.
public enum LatentUpscaleMode: String, CaseIterable, Sendable {
    /// `mode="nearest"`: the source cell at floor(i · in/out).
    case nearest
    /// `mode="nearest-exact"`: the source cell at floor((i + ½) · in/out).
    case nearestExact = "nearest-exact"
    /// `mode="bilinear"` (the web UI's plain "Latent").
    case bilinear
    /// `mode="bicubic"` (Keys' cubic, a = −0.75, edges clamped).
    case bicubic
    /// `mode="bilinear", antialias=True` (PIL-style triangle filter).
    case bilinearAntialiased = "bilinear-antialiased"
    /// `mode="bicubic", antialias=True` (PIL-style cubic, a = −0.5).
    case bicubicAntialiased = "bicubic-antialiased"

    /// The web UI's name of the upscaler, as its `Hires upscaler` text writes it.
    public var webUIName: String {
        switch self {
        case .nearest: return "Latent (nearest)"
        case .nearestExact: return "Latent (nearest-exact)"
        case .bilinear: return "Latent"
        case .bicubic: return "Latent (bicubic)"
        case .bilinearAntialiased: return "Latent (antialiased)"
        case .bicubicAntialiased: return "Latent (bicubic antialiased)"
        }
    }
}

/// What hires fix upscales with: a latent interpolation, or (where the engine has one) a pixel upscaler model that
/// decodes, upscales and re-encodes. Model upscalers are named here so that requests can carry them; an engine without
/// them refuses the request with a message that says so.
public enum HiresUpscaler: Equatable, Sendable {
    /// Interpolate the latents.
    case latent(LatentUpscaleMode)
    /// A pixel upscaler model (ESRGAN-class) by name.
    case model(String)

    /// The web UI's default, "Latent" (bilinear).
    public static let standard = HiresUpscaler.latent(.bilinear)

    /// Parses a name: a latent mode (`bilinear`, `nearest-exact`, … or the web UI's `Latent (bicubic antialiased)`,
    /// any case), else a model's name.
    public init(parsing name: String) {
        let key = name.lowercased()
        if let mode = LatentUpscaleMode.allCases.first(where: { $0.rawValue == key || $0.webUIName.lowercased() == key }) {
            self = .latent(mode)
        } else if key == "latent" {
            self = .standard
        } else {
            self = .model(name)
        }
    }

    /// The name the `parameters` text writes (`Hires upscaler: …`).
    public var webUIName: String {
        switch self {
        case .latent(let mode): return mode.webUIName
        case .model(let name): return name
        }
    }
}
