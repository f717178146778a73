import Foundation

// The web UI's composable diffusion (`AND` with weights, modules/prompt_parser.py get_multicond_prompt_list) and its
// extra-network tags (`<lora:NAME:WEIGHT>`, modules/extra_networks.py), which are taken out of the text.

/// One sub-prompt of `a AND b:0.5`: its text and weight.
public struct WeightedPrompt: Sendable, Equatable {
    /// The sub-prompt (prompt-editing and attention syntax left in place).
    public var text: String
    /// Its weight in the combined prediction (1 unless written as `text :w`).
    public var weight: Float

    /// Makes a sub-prompt.
    public init(text: String, weight: Float = 1) {
        self.text = text
        self.weight = weight
    }
}

/// A LoRA a prompt names with `<lora:NAME:WEIGHT>` (or `<lyco:…>`).
public struct LoRATag: Sendable, Equatable {
    /// The file's name (its stem in the LoRA folder).
    public var name: String
    /// Multiplies the UNet's change.
    public var weight: Float
    /// Multiplies the text encoders' change (`<lora:name:te:unet>` or `te=`); nil: `weight`.
    public var textWeight: Float?

    /// Makes a tag.
    public init(name: String, weight: Float = 1, textWeight: Float? = nil) {
        self.name = name
        self.weight = weight
        self.textWeight = textWeight
    }
}

/// Why a prompt's extra-network tag cannot be used.
public struct ExtraNetworkTagError: Error, Equatable, CustomStringConvertible {
    /// The tag as written.
    public var tag: String
    /// What is wrong and what to write instead.
    public var reason: String

    public var description: String { "prompt tag \(tag): \(reason)" }
}

/// Splitting prompts the web UI's way.
public enum ComposablePrompt {
    /// `prompt` split at each stand-alone `AND`, each part's trailing `:weight` read off (the web UI's regexes).
    public static func parts(_ prompt: String) -> [WeightedPrompt] {
        var parts: [WeightedPrompt] = []
        var rest = Substring(prompt)
        while let range = standAloneAND(in: rest) {
            parts.append(weighted(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(weighted(rest))
        return parts
    }

    private static func standAloneAND(in text: Substring) -> Range<Substring.Index>? {
        var search = text.startIndex..<text.endIndex
        while let range = text.range(of: "AND", range: search) {
            let isWord: (Character?) -> Bool = { $0.map { $0.isLetter || $0.isNumber || $0 == "_" } ?? false }
            let before = range.lowerBound == text.startIndex ? nil : text[text.index(before: range.lowerBound)]
            let after = range.upperBound == text.endIndex ? nil : text[range.upperBound]
            if !isWord(before) && !isWord(after) { return range }
            search = range.upperBound..<text.endIndex
        }
        return nil
    }

    /// `text :w` → (text, w); text alone → (text, 1).
    private static func weighted(_ part: Substring) -> WeightedPrompt {
        let trimmed = part.reversed().drop { $0.isWhitespace }.reversed()
        let text = String(trimmed)
        guard let colon = text.lastIndex(of: ":") else { return WeightedPrompt(text: text) }
        let number = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        let signless = number.hasPrefix("-") || number.hasPrefix("+") ? String(number.dropFirst()) : number
        guard !signless.isEmpty, signless != ".", signless.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            signless.filter({ $0 == "." }).count <= 1, let weight = Float(number)
        else { return WeightedPrompt(text: text) }
        return WeightedPrompt(text: String(text[..<colon].reversed().drop { $0.isWhitespace }.reversed()), weight: weight)
    }

    /// `prompt` without its `<type:args>` tags, and the LoRAs they name; a tag of a type the engine does not apply
    /// (`hypernet`) is an error rather than silently ignored.
    public static func extractingLoRAs(_ prompt: String) throws(ExtraNetworkTagError) -> (text: String, loras: [LoRATag]) {
        var text = ""
        var loras: [LoRATag] = []
        var rest = Substring(prompt)
        while let open = rest.firstIndex(of: "<") {
            text += rest[..<open]
            guard let close = rest[open...].firstIndex(of: ">"), let colon = rest[open..<close].firstIndex(of: ":"),
                rest[rest.index(after: open)..<colon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
                rest.index(after: open) < colon, rest.index(after: colon) < close
            else {
                text.append("<")
                rest = rest[rest.index(after: open)...]
                continue
            }
            let tag = String(rest[open...close])
            let kind = rest[rest.index(after: open)..<colon].lowercased()
            let arguments = rest[rest.index(after: colon)..<close].split(separator: ":", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard kind == "lora" || kind == "lyco" else {
                throw ExtraNetworkTagError(tag: tag, reason: "\(kind) networks are not supported; only <lora:NAME:WEIGHT> tags are applied")
            }
            loras.append(try loraTag(arguments, tag: tag))
            rest = rest[rest.index(after: close)...]
        }
        text += rest
        return (text, loras)
    }

    /// `name[:te][:unet]` with `te=`/`unet=` also accepted, as the web UI's Lora network reads them.
    private static func loraTag(_ arguments: [String], tag: String) throws(ExtraNetworkTagError) -> LoRATag {
        var positional: [Float] = []
        var named: [String: Float] = [:]
        for argument in arguments.dropFirst() {
            let pieces = argument.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let value = Float(pieces.last ?? "") else {
                throw ExtraNetworkTagError(tag: tag, reason: "\"\(argument)\" is not a weight; write <lora:NAME:0.8>")
            }
            if pieces.count == 2 { named[pieces[0]] = value } else { positional.append(value) }
        }
        guard let name = arguments.first, !name.isEmpty else { throw ExtraNetworkTagError(tag: tag, reason: "the LoRA has no name") }
        let text = named["te"] ?? positional.first ?? 1
        let unet = named["unet"] ?? (positional.count > 1 ? positional[1] : text)
        return LoRATag(name: name, weight: unet, textWeight: text == unet ? nil : text)
    }
}
