import Foundation
import Tensors

/// An upscaler file that cannot be used: unreadable, of an architecture this engine does not run, or with weights
/// that do not fit together. The message names the file and says what to do.
public struct UpscalerError: Error, CustomStringConvertible, Equatable {
    /// The file.
    public var path: String
    /// What is wrong, and what to do about it.
    public var message: String

    /// Makes an error about the file at `path`.
    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    /// One line: the file, then the message.
    public var description: String { "\(path): \(message)" }
}

/// The upscaler architectures, told apart by their keys as spandrel does, with the state dict renamed into the one
/// layout each network reads. The key mapping lives here, in one place, as data.
enum UpscalerKeys {
    /// The ESRGAN layouts: the old one (`model.0`, `model.1.sub.N.RDBk.convj.0`, …), Real-ESRGAN's (`conv_first`,
    /// `body.N.rdbk.convj`, `conv_body`, `conv_up1`, …) and BSRGAN's (`RRDB_trunk.N.RDBk.convj`, `trunk_conv`, `upconv1`,
    /// `HRconv`), all renamed to Real-ESRGAN's names.
    static func isRRDB(_ keys: Set<String>) -> Bool {
        (keys.contains("model.0.weight") && keys.contains("model.1.sub.0.RDB1.conv1.0.weight"))
            || (keys.contains("conv_first.weight") && keys.contains("body.0.rdb1.conv1.weight"))
            || (keys.contains("conv_first.weight") && keys.contains("RRDB_trunk.0.RDB1.conv1.weight"))
    }

    /// ESRGAN+ (extra 1×1 convolutions in its dense blocks), which spandrel also runs but this engine does not.
    static func isRRDBPlus(_ keys: Set<String>) -> Bool { keys.contains { $0.contains(".conv1x1.") } }

    /// Real-ESRGAN's SRVGGNetCompact: `body.0` a convolution, `body.1` its activation's slopes.
    static func isCompact(_ keys: Set<String>) -> Bool { keys.contains("body.0.weight") && keys.contains("body.1.weight") }

    /// Renames an ESRGAN state dict of any of the three layouts to Real-ESRGAN's names; tensors it does not know are
    /// an error (a layout this engine would misread).
    static func newRRDBNames(_ tensors: [String: Tensor], path: String) throws -> [String: Tensor] {
        if tensors["conv_first.weight"] != nil && tensors["body.0.rdb1.conv1.weight"] != nil { return tensors }
        var renamed: [String: Tensor] = [:]
        if tensors["RRDB_trunk.0.RDB1.conv1.weight"] != nil {
            let rules: [(String, String)] = [
                (#"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\."#, "body.$1.rdb$2.conv$3."), (#"^trunk_conv\."#, "conv_body."),
                (#"^upconv(\d)\."#, "conv_up$1."), (#"^HRconv\."#, "conv_hr."),
            ]
            for (key, tensor) in tensors { renamed[rename(key, rules)] = tensor }
            return renamed
        }
        // Old layout: model.0 first conv; model.1.sub.N the blocks then (N = blocks) the trunk's last conv; an
        // upsampling conv at every third index from 3; the high-resolution conv two after the last, the output conv four.
        let blocks = Set(tensors.keys.compactMap { captures(#"^model\.1\.sub\.(\d+)\.RDB"#, $0)?.first.flatMap { Int($0) } })
        let blockCount = (blocks.max() ?? -1) + 1
        let ups = tensors.keys.compactMap { key -> Int? in
            guard let index = captures(#"^model\.(\d+)\.weight$"#, key)?.first.flatMap({ Int($0) }), index >= 3, index % 3 == 0 else { return nil }
            return index
        }
        let lastUp = ups.max() ?? 0
        for (key, tensor) in tensors {
            if let c = captures(#"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$"#, key) {
                renamed["body.\(c[0]).rdb\(c[1]).conv\(c[2]).\(c[3])"] = tensor
            } else if let c = captures(#"^model\.1\.sub\.(\d+)\.(weight|bias)$"#, key), Int(c[0]) == blockCount {
                renamed["conv_body.\(c[1])"] = tensor
            } else if let c = captures(#"^model\.(\d+)\.(weight|bias)$"#, key), let index = Int(c[0]) {
                switch index {
                case 0: renamed["conv_first.\(c[1])"] = tensor
                case lastUp + 2 where index > 2: renamed["conv_hr.\(c[1])"] = tensor
                case lastUp + 4 where index > 4: renamed["conv_last.\(c[1])"] = tensor
                case let up where up >= 3 && up % 3 == 0 && up <= lastUp: renamed["conv_up\(up / 3).\(c[1])"] = tensor
                default: throw UpscalerError(path, "tensor \(key) has no place in an ESRGAN network; is the file complete?")
                }
            } else {
                throw UpscalerError(path, "tensor \(key) has no place in an ESRGAN network; is the file complete?")
            }
        }
        return renamed
    }

    /// `key` with the first rule whose pattern matches applied; the key itself when none does.
    static func rename(_ key: String, _ rules: [(String, String)]) -> String {
        for (pattern, template) in rules {
            let regex = try! NSRegularExpression(pattern: pattern)
            let range = NSRange(key.startIndex..., in: key)
            if regex.firstMatch(in: key, range: range) != nil {
                return regex.stringByReplacingMatches(in: key, range: range, withTemplate: template)
            }
        }
        return key
    }

    /// The capture groups of `pattern`'s match in `text`, or nil when it does not match.
    static func captures(_ pattern: String, _ text: String) -> [String]? {
        let regex = try! NSRegularExpression(pattern: pattern)
        guard let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return nil }
        return (1..<match.numberOfRanges).map { index in
            Range(match.range(at: index), in: text).map { String(text[$0]) } ?? ""
        }
    }

    /// The number of consecutive indices `prefix.0.`, `prefix.1.`, … present, as spandrel's `get_seq_len` (the highest
    /// index plus one).
    static func sequenceLength(_ keys: Set<String>, prefix: String) -> Int {
        let indices = keys.compactMap { key -> Int? in
            guard key.hasPrefix(prefix + ".") else { return nil }
            return Int(key.dropFirst(prefix.count + 1).prefix { $0 != "." })
        }
        return (indices.max() ?? -1) + 1
    }
}
