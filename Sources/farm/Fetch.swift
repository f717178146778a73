import ArgumentParser
import FarmModel
import Foundation
import JobStore

/// `farm fetch`: a job's finished images as PNG files, from the database or through the HTTP API.
struct Fetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a job's finished images as {job}-{index}-{seed}.png; files already there are skipped, so it resumes.")

    @OptionGroup var database: DatabaseOptions

    @OptionGroup var remote: RemoteOptions

    @Argument(help: "The job's id.")
    var job: Int64

    @Option(help: "Folder to write the PNG files into.")
    var out = "."

    func run() throws {
        let folder = URL(fileURLWithPath: out)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw ValidationError("--out \(out) is a file; give a folder to write the images into")
        }
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("--out \(out): cannot make the folder (\((error as NSError).localizedDescription))")
        }
        func file(_ index: Int, _ seed: String) -> URL { folder.appendingPathComponent("\(job)-\(index)-\(seed).png") }
        var written = 0
        var skipped = 0
        if let client = try remote.client() {
            // Over HTTP: list the images, then download only the ones not yet on disk.
            for entry in try client.json([ImageRecord].self, "GET", "jobs/\(job)/images") {
                let target = file(entry.index, String(entry.seed))
                if FileManager.default.fileExists(atPath: target.path) {
                    skipped += 1
                    continue
                }
                try client.send("GET", "tasks/\(entry.task)/image").write(to: target, options: .atomic)
                written += 1
            }
        } else {
            let store = JobStore(connection: try database.connect())
            guard try store.jobExists(job) else { throw ValidationError("job \(job) does not exist") }
            for image in try store.images(job: job) {
                let target = file(image.index, String(image.seed))
                if FileManager.default.fileExists(atPath: target.path) {
                    skipped += 1
                    continue
                }
                try image.png.write(to: target, options: .atomic)
                written += 1
            }
        }
        print("wrote \(written) image(s) to \(folder.path)" + (skipped > 0 ? " (\(skipped) already there)" : ""))
    }
}
