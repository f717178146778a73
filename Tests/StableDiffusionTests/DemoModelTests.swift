import Foundation
import Imaging
import StableDiffusion
import Tensors
import Testing

/// One held-out scene of the demo model's training set (Tools/demo_model/shapes.py --held-out):
/// a combination of shape, colour, size, corner and background that training never showed.
struct DemoCase: Decodable, Sendable, CustomTestStringConvertible {
    let prompt: String
    let shape: String, colour: String, size: String, position: String, background: String
    let seed: UInt64
    var testDescription: String { prompt }
}

/// Fixtures/demo_held_out.json: the held-out scenes.
func demoCases() throws -> [DemoCase] { try fixtureCases("demo_held_out.json") }

/// The palette of shapes.py, for reading colours back out of rendered images.
let demoPalette: [(name: String, rgb: (Float, Float, Float))] = [
    ("red", (220, 30, 30)), ("green", (30, 160, 60)), ("blue", (30, 60, 220)), ("yellow", (240, 220, 40)),
    ("white", (245, 245, 245)), ("black", (15, 15, 15)), ("orange", (245, 140, 20)), ("purple", (140, 50, 180)),
]

/// What simple image analysis reads from a scene (as `analyse` in Tools/demo_model/train_demo_model.py):
/// every pixel takes its nearest palette colour; the background is the commonest colour on the
/// border; the shape's colour is the commonest other colour among interior pixels (all four
/// neighbours alike, so the thin dark fringe a VAE leaves around edges does not count); the
/// quadrant is where that colour's pixels are centred. Nil fields when no shape stands out.
struct SceneReading: Equatable, CustomStringConvertible {
    var background: String
    var colour: String?
    var quadrant: String?
    var description: String { "\(colour ?? "no") shape at \(quadrant ?? "nowhere") on \(background)" }

    init(rgb: [UInt8], width: Int, height: Int) {
        func distance(_ i: Int, _ c: (Float, Float, Float)) -> Float {
            let (r, g, b) = (Float(rgb[i]) - c.0, Float(rgb[i + 1]) - c.1, Float(rgb[i + 2]) - c.2)
            return r * r + g * g + b * b
        }
        let labels = (0..<(width * height)).map { p in
            demoPalette.indices.min { distance(p * 3, demoPalette[$0].rgb) < distance(p * 3, demoPalette[$1].rgb) }!
        }
        var border = [Int](repeating: 0, count: demoPalette.count)
        for x in 0..<width {
            border[labels[x]] += 1
            border[labels[(height - 1) * width + x]] += 1
        }
        for y in 0..<height {
            border[labels[y * width]] += 1
            border[labels[y * width + width - 1]] += 1
        }
        let backgroundLabel = border.indices.max { border[$0] < border[$1] }!
        background = demoPalette[backgroundLabel].name
        var counts = [Int](repeating: 0, count: demoPalette.count)
        for y in 1..<(height - 1) {
            for x in 1..<(width - 1) {
                let p = y * width + x
                let l = labels[p]
                if l != backgroundLabel && labels[p - 1] == l && labels[p + 1] == l && labels[p - width] == l && labels[p + width] == l {
                    counts[l] += 1
                }
            }
        }
        guard counts.reduce(0, +) >= 8 else { return }
        let shapeLabel = counts.indices.max { counts[$0] < counts[$1] }!
        colour = demoPalette[shapeLabel].name
        var (sumX, sumY, n) = (0, 0, 0)
        for y in 0..<height {
            for x in 0..<width where labels[y * width + x] == shapeLabel {
                sumX += x
                sumY += y
                n += 1
            }
        }
        quadrant = (sumY * 2 < n * height ? "top" : "bottom") + " " + (sumX * 2 < n * width ? "left" : "right")
    }
}

/// The bundled demo model, loaded once for all tests.
let demoPipeline: Result<Pipeline, Error> = Result {
    guard let url = try BundledModels.url(BundledModels.demo) else { throw WeightsError("demo", "not a bundled model") }
    return try Pipeline(weights: try ModelWeights.load(url))
}

/// Renders a held-out case as the training script's evaluation does (DPM++ 2M, 20 steps, CFG 5, 64×64).
func renderDemoCase(_ scene: DemoCase, _ pipeline: Pipeline) throws -> [UInt8] {
    var settings = Pipeline.Settings()
    (settings.width, settings.height) = (64, 64)
    settings.steps = 20
    settings.guidance = 5
    settings.sampler = try SamplerName(parsing: "dpmpp_2m")
    settings.seed = scene.seed
    let (conditional, unconditional) = try pipeline.encodePrompts(scene.prompt, negative: "")
    let latents = try pipeline.sample(
        conditional: conditional, unconditional: unconditional, settings: settings,
        progress: { _, _ in true })
    return pipeline.decode(latents)[0]
}

/// Issue 10's bar: at least 16 of the 20 held-out captions drawn right (background, shape colour
/// and quadrant). The shipped model draws 19 (diffusers too; the one miss is a blue triangle read
/// as purple). Before the text encoder was pretrained to read the captions, models placed the shape
/// wherever the seed's noise put it (2/20).
@Test
func demoModelDrawsHeldOutCaptions() throws {
    let pipeline = try demoPipeline.get()
    var right = 0
    var report: [String] = []
    for scene in try demoCases() {
        let reading = SceneReading(rgb: try renderDemoCase(scene, pipeline), width: 64, height: 64)
        let ok = reading == SceneReading(background: scene.background, colour: scene.colour, quadrant: scene.position)
        if ok { right += 1 }
        report.append("\(ok ? "ok " : "BAD") \"\(scene.prompt)\": read \(reading)")
    }
    #expect(right >= 16, "\(right)/20 held-out captions drawn right:\n\(report.joined(separator: "\n"))")
}

/// The Swift engine draws the trained model's pictures as diffusers does (Fixtures/demo_diffusers:
/// StableDiffusionPipeline with DPMSolverMultistepScheduler from the model's scheduler config, the same
/// seeds on a CPU generator), within 3/255 per pixel. They used to differ by 6–83/255 on average: the
/// exported VAE config listed its scaling factor in `_use_default_values`, so diffusers decoded with
/// 0.18215 instead of the 0.47072 the model was trained with (the engine read the written value).
@Test
func demoModelMatchesDiffusers() throws {
    let pipeline = try demoPipeline.get()
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/demo_diffusers")
    var worst = 0
    var report: [String] = []
    for scene in try demoCases() {
        let rgb = try renderDemoCase(scene, pipeline)
        let reference = try PNGImage(pngData: Data(contentsOf: folder.appendingPathComponent("\(scene.seed).png"))).rgb()
        let differences = zip(rgb, reference.pixels).map { abs(Int($0) - Int($1)) }
        worst = max(worst, differences.max() ?? 255)
        report.append("seed \(scene.seed): mean \(Double(differences.reduce(0, +)) / Double(differences.count)), max \(differences.max() ?? 255)")
    }
    #expect(worst <= 3, "the engine's pixels differ from diffusers' by up to \(worst)/255:\n\(report.joined(separator: "\n"))")
}

/// What the demo model does follow: the background colour each held-out caption asks for.
@Test func demoModelDrawsTheAskedBackgrounds() throws {
    let pipeline = try demoPipeline.get()
    var report: [String] = []
    var backgrounds = 0
    for scene in try demoCases() {
        let reading = SceneReading(rgb: try renderDemoCase(scene, pipeline), width: 64, height: 64)
        if reading.background == scene.background { backgrounds += 1 }
        report.append("\"\(scene.prompt)\": read \(reading)")
    }
    #expect(backgrounds >= 16, "\(backgrounds)/20 backgrounds right:\n\(report.joined(separator: "\n"))")
}

@Test func sceneReadingFindsColoursAndQuadrant() {
    // A 64×64 blue image with a red 10×10 square around (48, 14): red at the top right on blue.
    var rgb = [UInt8](repeating: 0, count: 64 * 64 * 3)
    for y in 0..<64 {
        for x in 0..<64 {
            let inside = abs(x - 48) < 5 && abs(y - 14) < 5
            let colour: [UInt8] = inside ? [220, 30, 30] : [30, 60, 220]
            for c in 0..<3 { rgb[(y * 64 + x) * 3 + c] = colour[c] }
        }
    }
    #expect(SceneReading(rgb: rgb, width: 64, height: 64) == SceneReading(background: "blue", colour: "red", quadrant: "top right"))
    // Nothing but background: no shape is read.
    let plain = [UInt8](repeating: 240, count: 64 * 64 * 3)
    #expect(SceneReading(rgb: plain, width: 64, height: 64).colour == nil)
}

extension SceneReading {
    /// A reading as a case expects it.
    init(background: String, colour: String?, quadrant: String?) {
        (self.background, self.colour, self.quadrant) = (background, colour, quadrant)
    }
}

@Test func randomWeightsMatchTheDemoModelLayout() throws {
    let demo = try ModelWeights.load(try #require(try BundledModels.url(BundledModels.demo)))
    let random = ModelWeights.random(unet: demo.unetConfig, vae: demo.vaeConfig, textEncoder: demo.textEncoderConfig)
    #expect(layout(random.unet) == layout(demo.unet))
    #expect(layout(random.vae) == layout(demo.vae))
    #expect(layout(random.textEncoder) == layout(demo.textEncoder))
}
