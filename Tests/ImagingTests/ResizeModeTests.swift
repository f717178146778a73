import Foundation
import Imaging
import Testing

/// Init images fitted by the web UI's resize modes and plain Pillow resizes (Tools/make_resize_fixtures.py).
private struct ResizeFixtures: Decodable {
    struct FitCase: Decodable {
        let width, height, channels, mode, targetWidth, targetHeight: Int
        let pixels, expected: [UInt8]
    }
    struct PlainCase: Decodable {
        let size: [Int]
        let box: [Double]?
        let filter: String
        let expected: [UInt8]
    }
    struct Plain: Decodable {
        let width, height: Int
        let pixels: [UInt8]
        let cases: [PlainCase]
    }
    let cases: [FitCase]
    let plain: Plain

    static func load() throws -> ResizeFixtures {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/resize_modes.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(ResizeFixtures.self, from: try Data(contentsOf: url))
    }
}

@Test func resizeModesMatchTheWebUIByteForByte() throws {
    let fixtures = try ResizeFixtures.load()
    #expect(fixtures.cases.count == 18)
    for fixture in fixtures.cases {
        let image = try PNGImage(
            width: fixture.width, height: fixture.height, format: fixture.channels == 3 ? .rgb : .gray, pixels: fixture.pixels)
        let fit: ImageFit = [.stretch, .crop, .fill][fixture.mode]
        let fitted = try image.fitted(width: fixture.targetWidth, height: fixture.targetHeight, fit: fit)
        #expect(fitted.width == fixture.targetWidth && fitted.height == fixture.targetHeight)
        let wrong = zip(fitted.pixels, fixture.expected).filter { $0 != $1 }.count
        #expect(
            fitted.pixels == fixture.expected,
            "mode \(fixture.mode) \(fixture.width)x\(fixture.height) → \(fixture.targetWidth)x\(fixture.targetHeight): \(wrong) samples differ")
    }
}

@Test func resamplingMatchesPillowWithBoxes() throws {
    let plain = try ResizeFixtures.load().plain
    let image = try PNGImage(width: plain.width, height: plain.height, format: .rgb, pixels: plain.pixels)
    for fixture in plain.cases {
        let box = fixture.box.map { ($0[0], $0[1], $0[2], $0[3]) }
        let resized = try image.resampled(
            width: fixture.size[0], height: fixture.size[1], filter: fixture.filter == "lanczos" ? .lanczos : .bicubic, box: box)
        #expect(resized.pixels == fixture.expected, "\(fixture.filter) to \(fixture.size) from \(fixture.box ?? [])")
    }
}

@Test func cropAndFillKeepTheCentre() throws {
    // A 4x2 image whose left half is black and right half white, fitted to a square: crop keeps the middle two
    // columns (one black, one white); fill letterboxes it top and bottom, with the bands copied from the edge rows.
    let pixels: [UInt8] = [0, 0, 255, 255, 0, 0, 255, 255]
    let image = try PNGImage(width: 4, height: 2, format: .gray, pixels: pixels)
    let cropped = try image.fitted(width: 2, height: 2, fit: .crop)
    #expect(cropped.pixels == [0, 255, 0, 255])
    let filled = try image.fitted(width: 4, height: 4, fit: .fill)
    #expect(filled.pixels == [0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255])
}
