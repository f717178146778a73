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
    private var stored: [String: String] = [:]

    /// Inputs for a submission through `client` when there is one, else into `store`.
    init(client: FarmClient?, store: JobStore?) {
        self.client = client
        self.store = store
    }

    /// The SHA-256 of the PNG at `path` once it is stored; `field` names it in errors.
    func store(_ path: String, field: String) throws -> String {
        if let hash = stored[path] { return hash }
        let data = try Self.png(path, field: field)
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

    /// The bytes of a PNG file; a file that cannot be read, is not a PNG or is larger than the farm takes is one line.
    static func png(_ path: String, field: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(field) \(path): cannot read the file") }
        guard let size = PNGImage.declaredSize(of: data) else { throw ValidationError("\(field) \(path): not a PNG image") }
        let limit = Limits().generation.maxSide
        guard size.width <= limit && size.height <= limit else {
            throw ValidationError("\(field) \(path): \(size.width)x\(size.height); sides may be at most \(limit)")
        }
        return data
    }

    /// Refuses a task whose mask (by path) is not the size of its init image, from the files' headers, before
    /// anything is stored: the worker would fail every such task.
    /// `asFlags` names them as `farm submit --prompt` takes them (`--mask`, `--init-image`) instead of by path.
    static func checkMaskSizes(_ tasks: [TaskParameters], asFlags: Bool = false) throws {
        var sizes: [String: (width: Int, height: Int)] = [:]
        func size(_ path: String) -> (width: Int, height: Int)? {
            if let known = sizes[path] { return known }
            let found = FileManager.default.contents(atPath: path).flatMap(PNGImage.declaredSize(of:))
            sizes[path] = found
            return found
        }
        for task in tasks {
            guard let mask = task.mask, let image = task.initImage, !TaskParameters.isStoredImageName(mask),
                !TaskParameters.isStoredImageName(image), let maskSize = size(mask), let imageSize = size(image)
            else { continue }
            guard maskSize == imageSize else {
                let (maskName, imageName) = asFlags ? ("--mask", "--init-image") : ("mask \(mask)", "its init image \(image)")
                throw ValidationError(
                    "\(maskName) is \(maskSize.width)x\(maskSize.height) but \(imageName) is \(imageSize.width)x\(imageSize.height)")
            }
        }
    }
}
