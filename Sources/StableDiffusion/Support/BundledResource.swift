import Foundation

/// Finds a file or folder the StableDiffusion module ships in `Sources/StableDiffusion/Resources/`:
/// SwiftPM's resource bundle next to the executable, else the source tree in a folder above it
/// (a `swift build` tree run in place). Callers check an explicit path or variable first.
enum BundledResource {
    /// The path of `name` inside `Resources/`, or the places looked at when it is nowhere.
    static func locate(_ name: String) -> Result<URL, NotFound> {
        let files = FileManager.default
        var tried: [String] = []
        #if canImport(Darwin)
            let bundleFolder = Bundle.main.bundleURL.appendingPathComponent("DiffusionFarm_StableDiffusion.bundle")
        #else
            let bundleFolder = Bundle.main.bundleURL.appendingPathComponent("DiffusionFarm_StableDiffusion.resources")
        #endif
        // Bundle.module calls fatalError when its bundle is missing, so look for the folder first.
        if files.fileExists(atPath: bundleFolder.path) {
            let url = Bundle.module.bundleURL.appendingPathComponent("Resources/" + name)
            if files.fileExists(atPath: url.path) { return .success(url) }
            tried.append(url.path)
        } else {
            tried.append(bundleFolder.appendingPathComponent("Resources/" + name).path)
        }
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments.first ?? ".")
        var folder = executable.resolvingSymlinksInPath().deletingLastPathComponent().standardizedFileURL
        while true {
            let candidate = folder.appendingPathComponent("Sources/StableDiffusion/Resources/" + name)
            if files.fileExists(atPath: candidate.path) { return .success(candidate) }
            tried.append(candidate.path)
            let parent = folder.deletingLastPathComponent().standardizedFileURL
            if parent.path == folder.path { break }
            folder = parent
        }
        return .failure(NotFound(tried: tried))
    }

    /// The places a resource was looked for.
    struct NotFound: Error { let tried: [String] }
}

/// The models that ship with the engine, reachable by name wherever a model is named.
public enum BundledModels {
    /// The project's own small SD 1.x-structured model (64×64 scenes of coloured shapes).
    public static let demo = "demo"
    /// Overrides where the `demo` model is read from (a diffusers folder).
    public static let environmentVariable = "FARM_DEMO_MODEL"

    /// Every bundled model's name.
    public static let names = [demo]

    /// The folder of the bundled model `name`, or nil when `name` is not a bundled model.
    public static func url(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL? {
        guard name == demo else { return nil }
        if let path = environment[environmentVariable], !path.isEmpty {
            guard FileManager.default.fileExists(atPath: path + "/model_index.json") else {
                throw WeightsError(path, "\(environmentVariable) names no diffusers folder (no model_index.json there)")
            }
            return URL(fileURLWithPath: path)
        }
        switch BundledResource.locate("demo") {
        case .success(let url): return url
        case .failure(let notFound):
            throw WeightsError(
                "demo",
                "the bundled demo model is missing; tried \(notFound.tried.joined(separator: ", ")); "
                    + "set \(environmentVariable) to its folder (Sources/StableDiffusion/Resources/demo in the source tree)")
        }
    }

    /// `nameOrPath` as a file URL: a bundled model's folder for its name (unless a file of that name
    /// exists here), else the path itself.
    public static func resolve(_ nameOrPath: String) throws -> URL {
        if !FileManager.default.fileExists(atPath: nameOrPath), let url = try url(nameOrPath) { return url }
        return URL(fileURLWithPath: nameOrPath)
    }
}
