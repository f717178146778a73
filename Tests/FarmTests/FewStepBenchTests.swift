import Foundation
import Testing

/// `farm bench --few-steps` on the bundled demo model: every option gets a row (TAESD's 8× scale does not fit the
/// demo's VAE, so it has none), the full computation is its own reference, and every shortcut moves the picture by a
/// finite, measured amount.
@Test func fewStepBenchPrintsARowPerOption() throws {
    let process = Process()
    process.executableURL = farmBinary
    process.arguments = ["bench", "--few-steps", "--model", "demo", "--sizes", "64", "--steps", "4", "--few-step-seeds", "2"]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    #expect(process.terminationStatus == 0, "\(text)")
    #expect(text.contains("64×64, DPM++ 2M 4 steps CFG 7.5 unless named, seeds 1...2"), "\(text)")
    // "name | s/image | speed-up | PSNR dB | SSIM" per option.
    let rows = Dictionary(
        text.split(separator: "\n").compactMap { line -> (String, [String])? in
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            return cells.count == 5 && cells[0] != "option" ? (cells[0], Array(cells.dropFirst())) : nil
        }, uniquingKeysWith: { first, _ in first })
    let expected = ["full computation", "ToMe 0.3", "ToMe 0.5", "DeepCache 3, branch 0", "DeepCache 3 + ToMe 0.5", "LCM 4 steps, CFG 1"]
    #expect(Set(rows.keys) == Set(expected), "\(text)")
    #expect(rows["full computation"]?[1] == "1.00×" && rows["full computation"]?[2] == "inf" && rows["full computation"]?[3] == "1.0000")
    for name in expected.dropFirst() {
        guard let cells = rows[name], let seconds = Double(cells[0]), let psnr = Double(cells[2]), let ssim = Double(cells[3]) else {
            Issue.record("no figures for \(name): \(text)")
            continue
        }
        #expect(seconds > 0 && psnr.isFinite && psnr > 10 && ssim > 0 && ssim < 1, "\(name): \(cells)")
    }
}
