import Foundation
import Imaging
import Testing

private func pattern(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 3) }
}

@Test(arguments: [PNGImage.Format.gray, .grayAlpha, .rgb, .rgba])
func roundTripKeepsPixelsAndText(format: PNGImage.Format) throws {
    let width = 37
    let height = 23
    let image = try PNGImage(
        width: width, height: height, format: format,
        pixels: pattern(width * height * format.channels),
        text: [("prompt", "a red circle, 50% opacity\nsecond line"), ("seed", "42")])
    let data = try image.pngData()
    #expect(data.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
    let decoded = try PNGImage(pngData: data)
    #expect(decoded == image)
    #expect(decoded.textValue("seed") == "42")
}

@Test func encodingIsDeterministic() throws {
    let image = try PNGImage(width: 8, height: 8, format: .rgb, pixels: pattern(192))
    #expect(try image.pngData() == image.pngData())
}

@Test func truncatedFileIsAnErrorNotACrash() throws {
    let data = try PNGImage(width: 64, height: 64, format: .rgb, pixels: pattern(64 * 64 * 3)).pngData()
    for cut in [7, 8, 20, 33, data.count / 2, data.count - 13] {
        #expect(throws: ImagingError.self) { try PNGImage(pngData: data.prefix(cut)) }
    }
}

@Test func corruptFileIsAnErrorNotACrash() throws {
    var data = try PNGImage(width: 32, height: 32, format: .rgba, pixels: pattern(32 * 32 * 4)).pngData()
    // Flip bytes inside the IDAT payload: the CRC or zlib check must catch it.
    for offset in stride(from: 60, to: min(data.count - 12, 120), by: 7) { data[offset] ^= 0x5A }
    #expect(throws: ImagingError.self) { try PNGImage(pngData: data) }
    #expect(throws: ImagingError.self) { try PNGImage(pngData: Data("not a png at all".utf8)) }
    #expect(throws: ImagingError.self) { try PNGImage(pngData: Data()) }
}

@Test func oversizedImageIsRefusedBeforeAllocating() throws {
    let data = try PNGImage(width: 300, height: 200, format: .gray, pixels: pattern(60_000)).pngData()
    #expect(throws: ImagingError.self) { try PNGImage(pngData: data, limits: PNGLimits(maxSide: 256)) }
    #expect(throws: ImagingError.self) { try PNGImage(pngData: data, limits: PNGLimits(maxPixels: 50_000)) }
    #expect(try PNGImage(pngData: data, limits: PNGLimits(maxSide: 300, maxPixels: 60_000)).width == 300)
}

@Test func badImagesAreRejectedWithAMessage() {
    #expect(throws: ImagingError.self) { try PNGImage(width: 2, height: 2, format: .rgb, pixels: [1, 2, 3]) }
    #expect(throws: ImagingError.self) {
        try PNGImage(width: 1, height: 1, format: .gray, pixels: [0], text: [("", "empty key")]).pngData()
    }
}
