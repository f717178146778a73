import ArgumentParser
import Foundation
import Imaging
import StableDiffusion
import Tensors

/// `farm upscale`: enlarges PNG images with an ESRGAN-class upscaler model, on this machine.
struct Upscale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upscale PNG images with an ESRGAN, Real-ESRGAN or SRVGGNetCompact model.",
        discussion: """
            Reads the model from a .pth (PyTorch, through the restricted unpickler) or .safetensors file and recognises \
            the architecture and its scale from the weights' names, as spandrel does. Large images are upscaled in \
            overlapping tiles (memory bounded by --tile), blended at the seams. Each IMAGE is written to DIR under its \
            own file name; an alpha channel is dropped and text chunks are kept.
            """)

    @Argument(help: "The PNG images to upscale.")
    var images: [String]

    @Option(help: "The upscaler model: a .pth or .safetensors file.")
    var model: String

    @Option(help: "The enlargement (default: the model's). Other scales run the model until it reaches them, then shrink by area averaging.")
    var scale: Double?

    @Option(help: "The tile side in input pixels: memory grows with its square.")
    var tile = Upscaler.defaultTile

    @Option(help: "How many input pixels neighbouring tiles share, blended across.")
    var overlap = Upscaler.defaultOverlap

    @Option(help: "The folder to write the upscaled images to (made if missing).")
    var out: String

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("name at least one PNG image to upscale") }
        for image in images where !FileManager.default.fileExists(atPath: image) {
            throw ValidationError("\(image): no such image file")
        }
        guard FileManager.default.fileExists(atPath: model) else { throw ValidationError("--model \(model): no such file") }
        if let scale, !(scale > 0 && scale <= 16) { throw ValidationError("--scale must be in (0, 16], got \(scale)") }
        guard tile >= 16 else { throw ValidationError("--tile must be at least 16 pixels, got \(tile)") }
        guard overlap >= 0 && overlap <= tile / 2 else { throw ValidationError("--overlap must be 0...\(tile / 2) (half the tile), got \(overlap)") }
    }

    func run() throws {
        let upscaler: Upscaler
        do { upscaler = try Upscaler.load(URL(fileURLWithPath: model)) } catch { throw ValidationError(String(describing: error)) }
        guard upscaler.channels == 3 else {
            throw ValidationError("--model \(model): the model takes \(upscaler.channels) channels; only RGB (3-channel) models are supported")
        }
        let factor = scale ?? Double(upscaler.scale)
        let folder = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        FileHandle.standardError.write(Data("\(upscaler.architecture.rawValue) ×\(upscaler.scale) from \(model)\n".utf8))
        for path in images {
            let started = Date()
            let source = try Render.readPNG(path, flag: "IMAGE").rgb()
            let upscaled = upscaler.upscale(
                rgb: source.pixels, width: source.width, height: source.height, by: factor, tile: tile, overlap: overlap)
            let (height, width) = (upscaled.height, upscaled.width)
            let image = try PNGImage(width: width, height: height, format: .rgb, pixels: upscaled.rgb, text: source.text)
            let target = folder.appendingPathComponent(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent + ".png")
            try image.pngData().write(to: target, options: .atomic)
            print(String(format: "wrote %@ (%d×%d, %.1f s)", target.path, width, height, Date().timeIntervalSince(started)))
        }
    }
}
