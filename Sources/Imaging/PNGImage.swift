// Module Imaging: PNG encode and decode, bounds-checked, with text chunks. Imports only CPNG.

import CPNG
import Foundation

/// An 8-bit image in memory: rows top to bottom, samples interleaved per pixel.
public struct PNGImage: Equatable, Sendable {
    /// Pixel layout of the samples.
    public enum Format: Int, Sendable {
        case gray = 1
        case grayAlpha = 2
        case rgb = 3
        case rgba = 4

        /// Samples per pixel.
        public var channels: Int { rawValue }
    }

    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// The sample layout.
    public var format: Format
    /// `width * height * format.channels` samples.
    public var pixels: [UInt8]
    /// tEXt chunks, in file order (keys may repeat in PNG; we keep them all).
    public var text: [(key: String, value: String)]

    /// Makes an image, checking that the pixel count fits the size.
    public init(
        width: Int, height: Int, format: Format, pixels: [UInt8],
        text: [(key: String, value: String)] = []
    ) throws {
        guard width > 0, height > 0 else {
            throw ImagingError.invalidImage("image size must be positive, got \(width)x\(height)")
        }
        guard pixels.count == width * height * format.channels else {
            throw ImagingError.invalidImage(
                "expected \(width * height * format.channels) samples for \(width)x\(height) \(format), got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.format = format
        self.pixels = pixels
        self.text = text
    }

    /// The first tEXt value stored under `key`.
    public func textValue(_ key: String) -> String? {
        text.first(where: { $0.key == key })?.value
    }

    public static func == (lhs: PNGImage, rhs: PNGImage) -> Bool {
        lhs.width == rhs.width && lhs.height == rhs.height && lhs.format == rhs.format
            && lhs.pixels == rhs.pixels && lhs.text.elementsEqual(rhs.text, by: { $0 == $1 })
    }
}

/// Errors from reading or writing images; each says what was wrong.
public enum ImagingError: Error, Equatable, CustomStringConvertible {
    /// The bytes are not a readable PNG (corrupt, truncated, unsupported).
    case corrupt(String)
    /// The image is larger than the caller allows.
    case tooLarge(String)
    /// The in-memory image or its text chunks are malformed.
    case invalidImage(String)

    public var description: String {
        switch self {
        case .corrupt(let why): return "PNG could not be read: \(why)"
        case .tooLarge(let why): return "PNG is too large: \(why)"
        case .invalidImage(let why): return "invalid image: \(why)"
        }
    }
}

/// Limits applied while decoding untrusted PNGs, so that a small file cannot
/// demand gigabytes of pixel memory.
public struct PNGLimits: Sendable {
    /// Largest width or height accepted.
    public var maxSide: Int
    /// Largest width × height accepted.
    public var maxPixels: Int

    /// Builds limits from a side length and a pixel count.
    public init(maxSide: Int = 16_384, maxPixels: Int = 64 * 1024 * 1024) {
        self.maxSide = maxSide
        self.maxPixels = maxPixels
    }
}

extension PNGImage {
    /// The width and height a PNG's header (IHDR) declares, read without decoding anything; nil when the bytes do
    /// not start like a PNG. Lets a caller refuse an image of the wrong size before paying for its pixels.
    public static func declaredSize(of data: Data) -> (width: Int, height: Int)? {
        let bytes = [UInt8](data.prefix(24))
        guard bytes.count == 24, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
            bytes[12..<16].elementsEqual(Array("IHDR".utf8))
        else { return nil }
        func big(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        return (big(16), big(20))
    }

    /// Decodes PNG bytes into 8-bit samples (16-bit is narrowed, palettes expanded).
    public init(pngData data: Data, limits: PNGLimits = PNGLimits()) throws {
        var image = cpng_image()
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw -> Int32 in
            let base = raw.bindMemory(to: UInt8.self).baseAddress
            return cpng_decode(
                base, raw.count, UInt32(clamping: limits.maxSide), UInt64(limits.maxPixels),
                &image, &message, message.count)
        }
        defer { cpng_image_free(&image) }
        guard status == 0 else {
            let why = String(cString: message)
            if why.contains("too many pixels") || why.contains("exceeds user limit") || why.contains("too large") {
                throw ImagingError.tooLarge(why)
            }
            throw ImagingError.corrupt(why)
        }
        guard let format = Format(rawValue: Int(image.channels)) else {
            throw ImagingError.corrupt("unsupported channel count \(image.channels)")
        }
        let count = Int(image.width) * Int(image.height) * format.channels
        let pixels = Array(UnsafeBufferPointer(start: image.pixels, count: count))
        var text: [(key: String, value: String)] = []
        for index in 0..<image.text_count {
            let chunk = image.texts[index]
            text.append((String(cString: chunk.key), String(cString: chunk.text)))
        }
        try self.init(
            width: Int(image.width), height: Int(image.height), format: format,
            pixels: pixels, text: text)
    }

    /// Encodes the image as PNG, writing each text pair as a tEXt chunk.
    public func pngData(compressionLevel: Int = 6) throws -> Data {
        for (key, value) in text {
            guard (1...79).contains(key.utf8.count), !key.utf8.contains(0), !value.utf8.contains(0) else {
                throw ImagingError.invalidImage("tEXt key must be 1-79 bytes without NUL, got \"\(key)\"")
            }
        }
        // strdup keeps the C strings alive for the whole call.
        let keys = text.map { strdup($0.key)! }
        let values = text.map { strdup($0.value)! }
        defer {
            for key in keys { free(key) }
            for value in values { free(value) }
        }
        let chunks = zip(keys, values).map { cpng_text(key: $0, text: $1) }
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { samples in
            chunks.withUnsafeBufferPointer { textChunks in
                cpng_encode(
                    samples.baseAddress, UInt32(width), UInt32(height), UInt32(format.channels),
                    textChunks.baseAddress, textChunks.count, Int32(compressionLevel),
                    &output, &length, &message, message.count)
            }
        }
        guard status == 0, let output else {
            throw ImagingError.invalidImage(String(cString: message))
        }
        defer { cpng_free(output) }
        return Data(bytes: output, count: length)
    }
}
