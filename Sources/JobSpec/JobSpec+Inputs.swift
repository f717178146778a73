import FarmModel
import Foundation

/// A spec's input images: `init_image`, `mask` and `control_image` name a stored image by its SHA-256 or a PNG file
/// by its path (relative to the spec file), and `init_images: DIR` (with `masks: DIR`, matched by file name) makes
/// one task per image, as the web UI's img2img batch over a folder. Paths are read only where the spec was read from
/// a file (`farm submit`): the client stores or uploads each file once and the tasks then name its SHA-256, so that
/// a server never opens a path a client wrote.
extension JobSpec {
    /// Task fields that name an input image.
    static let inputFields = ["init_image", "mask", "control_image"]

    /// The input files the tasks name by path (absolute, each once, in first-use order): what `resolveInputs` replaces.
    public var inputPaths: [String] {
        var seen = Set<String>()
        return tasks.flatMap(\.inputHashes).filter { !TaskParameters.isStoredImageName($0) && seen.insert($0).inserted }
    }

    /// Replaces every input path with what `store` answers for it (the stored image's SHA-256), each path asked once.
    public mutating func resolveInputs(_ store: (String) throws -> String) throws {
        var stored: [String: String] = [:]
        func resolve(_ value: String?) throws -> String? {
            guard let value, !TaskParameters.isStoredImageName(value) else { return value }
            if let hash = stored[value] { return hash }
            let hash = try store(value)
            stored[value] = hash
            return hash
        }
        for index in tasks.indices {
            tasks[index].initImage = try resolve(tasks[index].initImage)
            tasks[index].mask = try resolve(tasks[index].mask)
            for control in (tasks[index].controlnets ?? []).indices {
                tasks[index].controlnets![control].image = try resolve(tasks[index].controlnets![control].image)!
            }
        }
    }

    /// An input field's value as a task holds it until `resolveInputs`: a stored image's SHA-256 as written, or a path
    /// made absolute against `directory`; a path where there is no directory (a spec sent to the HTTP API) is refused.
    static func input(_ value: String, field: String, directory: String?) throws -> String {
        if TaskParameters.isStoredImageName(value) { return value }
        guard let directory else {
            throw ValidationFailure(
                field: field,
                message: "must be the SHA-256 of an uploaded image (POST /v1/images); file paths are read by `farm submit`, which uploads them")
        }
        return value.hasPrefix("/") ? value : URL(fileURLWithPath: directory).appendingPathComponent(value).standardizedFileURL.path
    }

    /// The PNG files of a folder, sorted by name; a folder that cannot be read or holds none is refused.
    static func pngFiles(in folder: String, field: String, file: String) throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw JobSpecError(file: file, line: nil, field: field, message: "cannot read the folder \(folder)")
        }
        let pngs = names.filter { $0.lowercased().hasSuffix(".png") && !$0.hasPrefix(".") }.sorted()
        guard !pngs.isEmpty else { throw JobSpecError(file: file, line: nil, field: field, message: "no .png files in \(folder)") }
        return pngs
    }

    /// `rows` once per image of `initImages` (a folder), each naming the image and, with `masks`, the mask of the same
    /// file name in that folder.
    static func batchRows(
        _ rows: [(fields: [String: String], line: Int?)], initImages: String, masks: String?, directory: String?, file: String
    ) throws -> [(fields: [String: String], line: Int?)] {
        guard let directory else {
            throw JobSpecError(
                file: file, line: nil, field: "init_images", message: "a folder is read by `farm submit`, which uploads its images")
        }
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : URL(fileURLWithPath: directory).appendingPathComponent(path).standardizedFileURL.path
        }
        let imageFolder = absolute(initImages)
        let images = try pngFiles(in: imageFolder, field: "init_images", file: file)
        let maskFolder = masks.map(absolute)
        if let maskFolder {
            let available = Set(try pngFiles(in: maskFolder, field: "masks", file: file))
            if let missing = images.first(where: { !available.contains($0) }) {
                throw JobSpecError(file: file, line: nil, field: "masks", message: "no mask named \(missing) for the init image of that name")
            }
        }
        guard images.count * rows.count <= maxTasks else {
            throw JobSpecError(
                file: file, line: nil, field: "init_images", message: "\(images.count) images × \(rows.count) rows is over \(maxTasks) tasks")
        }
        return images.flatMap { name in
            rows.map { row in
                var fields = row.fields
                fields["init_image"] = imageFolder + "/" + name
                if let maskFolder { fields["mask"] = maskFolder + "/" + name }
                return (fields, row.line)
            }
        }
    }

    /// A list-valued task field (`outpaint`, `require`) as written: a list in YAML/JSON, or comma-separated text.
    static func listText(_ items: [String]) -> String { items.joined(separator: ",") }

    /// The comma-separated values of a list-valued field's text, trimmed, empty ones dropped.
    static func listItems(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
