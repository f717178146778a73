// The attention syntax of the AUTOMATIC1111 web UI (modules/prompt_parser.py, parse_prompt_attention),
// reproduced quirk for quirk so that a prompt weighs the same here as there: weights are Doubles multiplied
// in A1111's order, because equal weights decide which fragments merge.

/// A run of prompt text with one attention weight, as A1111's `parse_prompt_attention` returns it.
public struct PromptFragment: Sendable, Hashable, CustomStringConvertible {
    /// The text, with escapes resolved and brackets removed.
    public var text: String
    /// The product of the multipliers of the brackets around the text.
    public var weight: Double

    /// A fragment of `text` weighted `weight`.
    public init(text: String, weight: Double) {
        self.text = text
        self.weight = weight
    }

    /// A1111's BREAK marker: the text "BREAK" with weight −1.
    public static let breakMarker = PromptFragment(text: "BREAK", weight: -1)

    /// Whether this is a BREAK. As in A1111, a BREAK inside brackets has its weight scaled, stops being
    /// a marker and is tokenized as the word "break".
    public var isBreak: Bool { self == Self.breakMarker }

    /// The fragment as A1111 prints it: `(text, weight)`.
    public var description: String { "(\(text.debugDescription), \(weight))" }
}

/// Why a prompt could not be parsed.
public enum PromptSyntaxError: Error, Equatable, CustomStringConvertible {
    /// `(text:WEIGHT)` whose weight is no number (A1111 fails on it too).
    case invalidWeight(String)

    /// What is wrong and how to write it instead.
    public var description: String {
        switch self {
        case .invalidWeight(let weight):
            return "prompt weight \"\(weight)\" is not a number; write weights like (text:1.2), or escape the bracket as \\) to keep it as text."
        }
    }
}

/// A1111's prompt attention syntax.
///
/// `(text)` multiplies the weight by 1.1, `[text]` divides it by 1.1, `(text:1.3)` multiplies it by 1.3;
/// `\(` `\)` `\[` `\]` `\\` are literal characters; unclosed brackets close at the end; a stand-alone
/// upper-case `BREAK` starts a new chunk; adjacent fragments with equal weights merge.
public enum PromptParser {
    private static let roundMultiplier = 1.1
    private static let squareMultiplier = 1 / 1.1

    /// The weighted fragments of `prompt`; at least one, `("", 1)` for an empty prompt.
    public static func parse(_ prompt: String) throws -> [PromptFragment] {
        let scalars = Array(prompt.unicodeScalars)
        var result: [PromptFragment] = []
        var roundOpen: [Int] = []
        var squareOpen: [Int] = []

        func multiply(from start: Int, by multiplier: Double) {
            for index in start..<result.count { result[index].weight *= multiplier }
        }
        func appendText(_ range: Range<Int>) {
            for (number, part) in splitOnBreak(scalars, range).enumerated() {
                if number > 0 { result.append(.breakMarker) }
                result.append(PromptFragment(text: string(scalars[part]), weight: 1))
            }
        }

        // Each step consumes one token of A1111's re_attention, trying its alternatives in the same order.
        var index = 0
        while index < scalars.count {
            switch scalars[index] {
            case "\\":
                if index + 1 < scalars.count, "()[]\\".unicodeScalars.contains(scalars[index + 1]) {
                    result.append(PromptFragment(text: String(scalars[index + 1]), weight: 1))
                    index += 2
                } else {
                    // A lone backslash is a token of its own whose text (after the backslash) is empty.
                    result.append(PromptFragment(text: "", weight: 1))
                    index += 1
                }
            case "(":
                roundOpen.append(result.count)
                index += 1
            case "[":
                squareOpen.append(result.count)
                index += 1
            case ":":
                if let end = weightEnd(scalars, colon: index) {
                    if let open = roundOpen.popLast() {
                        let text = string(scalars[(index + 1)..<(end - 1)])
                        guard let weight = pythonFloat(text) else { throw PromptSyntaxError.invalidWeight(text) }
                        multiply(from: open, by: weight)
                    } else {
                        appendText(index..<end)
                    }
                    index = end
                } else {
                    appendText(index..<(index + 1))
                    index += 1
                }
            case ")":
                if let open = roundOpen.popLast() { multiply(from: open, by: roundMultiplier) } else { appendText(index..<(index + 1)) }
                index += 1
            case "]":
                if let open = squareOpen.popLast() { multiply(from: open, by: squareMultiplier) } else { appendText(index..<(index + 1)) }
                index += 1
            default:
                var end = index + 1
                while end < scalars.count && !"\\()[]:".unicodeScalars.contains(scalars[end]) { end += 1 }
                appendText(index..<end)
                index = end
            }
        }
        for open in roundOpen { multiply(from: open, by: roundMultiplier) }
        for open in squareOpen { multiply(from: open, by: squareMultiplier) }
        if result.isEmpty { result = [PromptFragment(text: "", weight: 1)] }

        var merged: [PromptFragment] = []
        for fragment in result {
            if let last = merged.last, last.weight == fragment.weight {
                merged[merged.count - 1].text += fragment.text
            } else {
                merged.append(fragment)
            }
        }
        return merged
    }

    /// The end of `:([+-]?[.\d]+)\)` starting at `colon` (just past the ")"), if it matches there.
    private static func weightEnd(_ scalars: [Unicode.Scalar], colon: Int) -> Int? {
        var index = colon + 1
        if index < scalars.count && (scalars[index] == "+" || scalars[index] == "-") { index += 1 }
        let digitsStart = index
        while index < scalars.count && (scalars[index] == "." || decimalDigit(scalars[index]) != nil) { index += 1 }
        guard index > digitsStart, index < scalars.count, scalars[index] == ")" else { return nil }
        return index + 1
    }

    /// Python's `float()` of a `[+-]?[.\d]+` string: digits with at most one point; any Unicode decimal digit counts.
    private static func pythonFloat(_ text: String) -> Double? {
        var ascii = ""
        var digits = 0
        var points = 0
        for scalar in text.unicodeScalars {
            if scalar == "+" || scalar == "-" || scalar == "." {
                if scalar == "." { points += 1 }
                ascii.unicodeScalars.append(scalar)
            } else if let digit = decimalDigit(scalar) {
                digits += 1
                ascii += String(digit)
            }
        }
        guard digits > 0, points <= 1 else { return nil }
        return Double(ascii)
    }

    /// The value of a Unicode decimal digit (category Nd, what Python's `\d` matches).
    private static func decimalDigit(_ scalar: Unicode.Scalar) -> Int? {
        if scalar.value >= 0x30 && scalar.value <= 0x39 { return Int(scalar.value - 0x30) }
        guard scalar.value >= 0x80, scalar.properties.generalCategory == .decimalNumber,
            CLIPTextNormalizer.isAssignedInReference(scalar),
            let value = scalar.properties.numericValue
        else { return nil }
        return Int(value)
    }

    /// `re.split(r"\s*\bBREAK\b\s*", text)` over `range`: the parts between stand-alone BREAKs.
    private static func splitOnBreak(_ scalars: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        let word = Array("BREAK".unicodeScalars)
        var parts: [Range<Int>] = []
        var partStart = range.lowerBound
        var index = range.lowerBound
        while index + word.count <= range.upperBound {
            let end = index + word.count
            // \b looks at the neighbouring characters of the fragment, also inside an earlier match.
            guard Array(scalars[index..<end]) == word,
                index == range.lowerBound || !isWordCharacter(scalars[index - 1]),
                end == range.upperBound || !isWordCharacter(scalars[end])
            else {
                index += 1
                continue
            }
            var matchStart = index
            while matchStart > partStart && CLIPTextNormalizer.isPythonSpace(scalars[matchStart - 1]) { matchStart -= 1 }
            var matchEnd = end
            while matchEnd < range.upperBound && CLIPTextNormalizer.isPythonSpace(scalars[matchEnd]) { matchEnd += 1 }
            parts.append(partStart..<matchStart)
            partStart = matchEnd
            index = matchEnd
        }
        parts.append(partStart..<range.upperBound)
        return parts
    }

    /// Python's `\w`: `str.isalnum()` or "_".
    private static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x80 {
            return (0x30...0x39).contains(value) || (0x41...0x5A).contains(value) || (0x61...0x7A).contains(value) || value == 0x5F
        }
        guard CLIPTextNormalizer.isAssignedInReference(scalar) else { return false }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return scalar.properties.numericType != nil
        }
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}
