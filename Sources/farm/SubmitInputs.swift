import ArgumentParser
import FarmModel
import Foundation
import Imaging
import JobSpec
import JobStore

/// Where `farm submit` puts the input images a job names by path: into the database (`--database`) or uploaded to
/// the coordinator (`--server`, `POST /v1/images`); each file read and sent once, answered by its SHA-256.
final class SubmitInputs {
    private let client: FarmClient?
    private let store: JobStore?
    /// Each input file's bytes, read and checked once (the mask check and the upload share them).
    private var files: [String: Data] = [:]
    private var stored: [String: String] = [:]

    /// Inputs for a submission through `client` when there is one, else into `store`.
    init(client: FarmClient?, store: JobStore?) {
        self.client = client
        self.store = store
    }

    /// The SHA-256 of the PNG at `path` once it is stored; `field` names it in errors.
    func store(_ path: String, field: String) throws -> String {
        if let hash = stored[path] { return hash }
        let data = try png(path, field: field)
        let hash: String
        if let client {
            hash = try client.json(StoredInput.self, "POST", "images", body: data).sha256
        } else if let store {
            hash = try store.storeBlob(data)
        } else {
            throw ValidationError("\(field) \(path): nowhere to store it")
        }
        stored[path] = hash
        return hash
    }

    /// The bytes of a PNG file, read once; a file that cannot be read, is not a PNG or is larger than the farm takes
    /// is one line.
    func png(_ path: String, field: String) throws -> Data {
        if let data = files[path] { return data }
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(field) \(path): cannot read the file") }
        guard let size = PNGImage.declaredSize(of: data) else { throw ValidationError("\(field) \(path): not a PNG image") }
        let limit = Limits().generation.maxSide
        guard size.width <= limit && size.height <= limit else {
            throw ValidationError("\(field) \(path): \(size.width)x\(size.height); sides may be at most \(limit)")
        }
        files[path] = data
        return data
    }

    /// Refuses a task whose mask (by path) is not the size of its init image, from the files' headers, before
    /// anything is stored: the worker would fail every such task. `asFlags` names them as `farm submit --prompt` takes
    /// them (`--mask`, `--init-image`) instead of by path.
    func checkMaskSizes(_ tasks: [TaskParameters], asFlags: Bool = false) throws {
        for task in tasks {
            guard let mask = task.mask, let image = task.initImage, !TaskParameters.isStoredImageName(mask),
                !TaskParameters.isStoredImageName(image),
                let maskSize = PNGImage.declaredSize(of: try png(mask, field: asFlags ? "--mask" : "mask")),
                let imageSize = PNGImage.declaredSize(of: try png(image, field: asFlags ? "--init-image" : "init_image"))
            else { continue }
            guard maskSize == imageSize else {
                let (maskName, imageName) = asFlags ? ("--mask", "--init-image") : ("mask \(mask)", "its init image \(image)")
                throw ValidationError(
                    "\(maskName) is \(maskSize.width)x\(maskSize.height) but \(imageName) is \(imageSize.width)x\(imageSize.height)")
            }
        }
    }
}
