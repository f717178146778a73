import Foundation
import Testing
import Worker

/// The model cache keeps the most recently used files within its budget (file times, so the order survives a
/// restart), never deletes one in use, and removes an evicted model's sidecar with it.
@Test func modelCacheEvictsTheLeastRecentlyUsedButNeverOneInUse() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cache-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let hashes = ["1", "2", "3"].map { String(repeating: $0, count: 64) }
    for (age, hash) in hashes.enumerated() {
        let file = folder.appendingPathComponent("\(hash).safetensors")
        try Data(repeating: 0, count: 100).write(to: file)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: Double(age - 10) * 60)], ofItemAtPath: file.path)
    }
    try Data("{}".utf8).write(to: folder.appendingPathComponent("\(hashes[0]).config.json"))
    try Data(repeating: 0, count: 500).write(to: folder.appendingPathComponent("notes.txt"))

    let cache = try ModelCache(folder: folder, budgetBytes: 250)
    #expect(cache.hashes == hashes)
    cache.retain(hashes[0])
    #expect(cache.evict() == [hashes[1]], "the oldest is in use: the next oldest goes")
    cache.release(hashes[0])
    #expect(cache.hashes == [hashes[0], hashes[2]])
    let reopened = try ModelCache(folder: folder, budgetBytes: 150)
    #expect(reopened.evict() == [hashes[0]], "after a restart the least recently used still goes first")
    #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("\(hashes[0]).config.json").path))
    #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("notes.txt").path), "files not its own stay")
}
