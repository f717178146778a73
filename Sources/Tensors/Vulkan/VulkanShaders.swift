import Foundation

/// The compute shaders' SPIR-V: compiled from `Sources/Tensors/Shaders/*.comp` by `Tools/compile_shaders.sh` and
/// committed (`VulkanShaders+<Group>SPIRV.swift`, joined in `VulkanShaders+SPIRV.swift`), so that neither a build
/// nor a host needs glslc.
public enum VulkanShaders {
    /// Every shader's name (its file name without `.comp`), sorted.
    public static var names: [String] { base64.keys.sorted() }

    /// The SPIR-V of shader `name`, or nil for a name that is not one.
    public static func spirv(_ name: String) -> [UInt8]? {
        guard let text = base64[name], let data = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else { return nil }
        return [UInt8](data)
    }
}
