import Imaging
import Testing

@Test func extendedCanvasCopiesEdgesAndMasksTheNewArea() throws {
    let image = try PNGImage(width: 2, height: 1, format: .rgb, pixels: [10, 20, 30, 40, 50, 60])
    let (canvas, mask) = try image.extended(left: 1, right: 2, top: 0, bottom: 1)
    #expect(canvas.width == 5 && canvas.height == 2)
    #expect(Array(canvas.pixels[0..<15]) == [10, 20, 30, 10, 20, 30, 40, 50, 60, 40, 50, 60, 40, 50, 60])
    #expect(mask.pixels == [255, 0, 0, 255, 255, 255, 255, 255, 255, 255])
    #expect(throws: ImagingError.self) { try image.extended(left: -1, right: 0, top: 0, bottom: 0) }
}

@Test func blurIsSoftAndCompositeBlends() throws {
    var pixels = [UInt8](repeating: 0, count: 20)
    for x in 10..<20 { pixels[x] = 255 }
    let mask = try PNGImage(width: 20, height: 1, format: .gray, pixels: pixels)
    let soft = mask.blurred(sigma: 2)
    #expect(soft.pixels[0] == 0 && soft.pixels[19] == 255)
    #expect(soft.pixels[9] > 0 && soft.pixels[9] < 128 && soft.pixels[10] > 128 && soft.pixels[10] < 255)
    #expect(zip(soft.pixels, soft.pixels.dropFirst()).allSatisfy { $0 <= $1 }, "monotone across the edge")
    let black = try PNGImage(width: 20, height: 1, format: .rgb, pixels: [UInt8](repeating: 0, count: 60))
    let white = try PNGImage(width: 20, height: 1, format: .rgb, pixels: [UInt8](repeating: 255, count: 60))
    let blended = try black.composited(under: white, mask: soft)
    #expect((0..<20).map { blended.pixels[$0 * 3] } == soft.pixels)
    #expect(mask.dilated(by: 3).pixels.firstIndex(of: 255) == 7)
}
