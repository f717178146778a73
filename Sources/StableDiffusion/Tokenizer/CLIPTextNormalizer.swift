// The text side of transformers' slow CLIPTokenizer (4.x, the one diffusers loads) when ftfy is NOT
// installed: BasicTokenizer(strip_accents=False, do_split_on_punc=False) cleans the text, spaces out CJK
// ideographs, applies NFC, splits on whitespace and lower-cases; then the `regex` module splits each word with
// <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+  (IGNORECASE).
// Everything here works on Unicode scalars because Python strings are sequences of code points.

/// BasicTokenizer's clean-up and word splitting, and CLIP's regex split of a word into pieces.
enum CLIPTextNormalizer {
    /// Python 3.11's unicodedata (the fixtures' reference) knows Unicode 14.0: newer characters are
    /// unassigned (category Cn) there, so the clean-up drops them; Swift's tables are newer.
    static let referenceUnicodeVersion = (major: 14, minor: 0)

    /// The lower-cased words of `text`, as `BasicTokenizer.tokenize` returns them.
    static func words(_ text: Substring.UnicodeScalarView) -> [[Unicode.Scalar]] {
        var cleaned = String.UnicodeScalarView()
        var mayNeedNFC = false
        for scalar in text {
            let value = scalar.value
            if value < 0x80 {
                if value == 0x09 || value == 0x0A || value == 0x0D || value == 0x20 {
                    cleaned.append(" ")
                } else if value >= 0x20 && value != 0x7F {  // the rest of ASCII below 0x20, and DEL, are Cc
                    cleaned.append(scalar)
                }
                continue
            }
            if value == 0xFFFD || isControl(scalar) { continue }
            if scalar.properties.generalCategory == .spaceSeparator {
                cleaned.append(" ")
            } else if isCJKIdeograph(value) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
            // Nothing below U+0300 composes or decomposes under NFC, so plain Latin text skips it.
            if value >= 0x300 { mayNeedNFC = true }
        }
        var normalized = cleaned
        if mayNeedNFC {
            // Foundation's precomposedStringWithCanonicalMapping mangles a supplementary-plane base followed by a
            // combining mark (it keeps only the low 16 bits); the standard library's NFC matches Python's.
            normalized = String(decoding: String(cleaned)._nfcCodeUnits, as: UTF8.self).unicodeScalars
        }
        var words: [[Unicode.Scalar]] = []
        var word: [Unicode.Scalar] = []
        for scalar in normalized {
            if isPythonSpace(scalar) {
                if !word.isEmpty { words.append(lowercased(word)) }
                word.removeAll(keepingCapacity: true)
            } else {
                word.append(scalar)
            }
        }
        if !word.isEmpty { words.append(lowercased(word)) }
        return words
    }

    /// A piece of a word: a special token's id, or a range of the word to byte-encode and BPE.
    enum Piece: Equatable {
        case special(Int)
        case text(Range<Int>)
    }

    /// Splits a lower-cased word as CLIP's regex does, calling `emit` for each piece in order.
    static func pieces(of word: [Unicode.Scalar], emit: (Piece) -> Void) {
        var index = 0
        while index < word.count {
            let scalar = word[index]
            if scalar == "<" {
                if let match = matchSpecial(word, at: index) {
                    emit(match.exact ? .special(match.id) : .text(index..<index + match.length))
                    index += match.length
                    continue
                }
            } else if scalar == "'", let length = matchContraction(word, at: index) {
                emit(.text(index..<index + length))
                index += length
                continue
            }
            let kind = characterClass(scalar)
            switch kind {
            case .skipped:
                index += 1
            case .number:
                emit(.text(index..<index + 1))
                index += 1
            case .letter, .other:
                var end = index + 1
                while end < word.count && characterClass(word[end]) == kind { end += 1 }
                emit(.text(index..<end))
                index = end
            }
        }
    }

    private enum CharacterClass { case letter, number, other, skipped }

    /// What the regex's classes make of a scalar: `[\p{L}]`, `[\p{N}]`, `[^\s\p{L}\p{N}]`, or none of them.
    private static func characterClass(_ scalar: Unicode.Scalar) -> CharacterClass {
        let value = scalar.value
        if value < 0x80 {
            switch value {
            case 0x41...0x5A, 0x61...0x7A: return .letter
            case 0x30...0x39: return .number
            case 0x09...0x0D, 0x20: return .skipped
            default: return .other
            }
        }
        switch value {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return .skipped
        case 0x345:
            // COMBINING GREEK YPOGEGRAMMENI case-folds to a letter, so under IGNORECASE the `regex` module
            // matches it with neither [\p{L}] nor [^\s\p{L}\p{N}]: findall skips it like a space.
            return .skipped
        default:
            break
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    private static let startOfText = Array("<|startoftext|>".unicodeScalars)
    private static let endOfText = Array("<|endoftext|>".unicodeScalars)
    private static let contractions = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }

    /// A special token's literal at `index`, matched case-insensitively as the regex does; only an exact
    /// match is the special id (BPE's cache holds just the exact strings), a case variant is ordinary text.
    private static func matchSpecial(_ word: [Unicode.Scalar], at index: Int) -> (id: Int, length: Int, exact: Bool)? {
        for (literal, id) in [(startOfText, CLIPVocabulary.startOfText), (endOfText, CLIPVocabulary.endOfText)] {
            guard index + literal.count <= word.count else { continue }
            var exact = true
            var matches = true
            for (offset, expected) in literal.enumerated() {
                let actual = word[index + offset]
                if actual != expected {
                    exact = false
                    if !foldsTo(actual, expected) {
                        matches = false
                        break
                    }
                }
            }
            if matches { return (id, literal.count, exact) }
        }
        return nil
    }

    /// The length of the contraction ('s, 't, 're, 've, 'm, 'll, 'd) starting at the apostrophe at `index`.
    private static func matchContraction(_ word: [Unicode.Scalar], at index: Int) -> Int? {
        for suffix in contractions where index + suffix.count < word.count {
            if suffix.indices.allSatisfy({ foldsTo(word[index + 1 + $0], suffix[$0]) }) { return suffix.count + 1 }
        }
        return nil
    }

    /// Whether `scalar` matches the lower-case ASCII `letter` under the `regex` module's IGNORECASE
    /// (simple case folding: the upper-case letter, and LATIN SMALL LETTER LONG S for "s").
    private static func foldsTo(_ scalar: Unicode.Scalar, _ letter: Unicode.Scalar) -> Bool {
        if scalar == letter { return true }
        if scalar.value + 0x20 == letter.value && (0x61...0x7A).contains(letter.value) { return true }
        return letter == "s" && scalar == "\u{17F}"
    }

    /// Python's `str.lower()` of one word: full lower-case mappings, with Σ becoming ς at a word's end.
    static func lowercased(_ word: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(word.count)
        for (index, scalar) in word.enumerated() {
            let value = scalar.value
            if value < 0x80 {
                result.append((0x41...0x5A).contains(value) ? Unicode.Scalar(value + 0x20)! : scalar)
            } else if value == 0x3A3 {
                result.append(isFinalSigma(word, at: index) ? "\u{3C2}" : "\u{3C3}")
            } else {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return result
    }

    /// Unicode's Final_Sigma context, as CPython checks it: a cased letter before (skipping case-ignorable
    /// characters) and none after.
    private static func isFinalSigma(_ word: [Unicode.Scalar], at index: Int) -> Bool {
        var before = index - 1
        while before >= 0 && word[before].properties.isCaseIgnorable { before -= 1 }
        guard before >= 0 && word[before].properties.isCased else { return false }
        var after = index + 1
        while after < word.count && word[after].properties.isCaseIgnorable { after += 1 }
        return after == word.count || !word[after].properties.isCased
    }

    /// BasicTokenizer's `_is_control`: any category C*, here including characters newer than the reference Unicode.
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        guard isAssignedInReference(scalar) else { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// Whether Python 3.11's unicodedata knows the scalar (anything else is category Cn there).
    static func isAssignedInReference(_ scalar: Unicode.Scalar) -> Bool {
        guard let age = scalar.properties.age else { return false }
        return (age.major, age.minor) <= referenceUnicodeVersion
    }

    /// BasicTokenizer's `_is_chinese_char`: the CJK Unified and Compatibility Ideograph blocks.
    private static func isCJKIdeograph(_ value: UInt32) -> Bool {
        switch value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
            0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Python's `str.isspace()`, which `str.split()` splits on.
    static func isPythonSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }
}
