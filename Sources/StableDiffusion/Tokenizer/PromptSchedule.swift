import Foundation

// The web UI's prompt editing (modules/prompt_parser.py, get_learned_conditioning_prompt_schedules): `[from:to:when]`,
// `[to:when]`, `[from::when]` and `[a|b]`, parsed by hand to the same grammar as its lark parser.

/// One stretch of a prompt schedule: the text the sampler's steps up to `endStep` are conditioned on.
public struct ScheduledText: Sendable, Equatable, CustomStringConvertible {
    /// The web UI's `end_at_step`: sampler step s (from 0) uses the first stretch with s ≤ endStep.
    public var endStep: Int
    /// The prompt at those steps (attention syntax left in place).
    public var text: String

    /// Makes a stretch.
    public init(endStep: Int, text: String) {
        self.endStep = endStep
        self.text = text
    }

    public var description: String { "\(endStep): \(text.debugDescription)" }
}

/// Parses and evaluates the web UI's prompt editing. `when` with a decimal point is a fraction of the steps, without
/// one a step number (the web UI's current rule); `[a|b]` alternates every step. A prompt the grammar does not accept
/// is kept whole, as the web UI keeps it.
public enum PromptSchedule {
    /// The stretches of `prompt` for a render of `steps` steps: one per distinct switching step, the last ending at
    /// `steps`.
    public static func schedule(_ prompt: String, steps: Int) -> [ScheduledText] {
        var parser = Parser(Array(prompt))
        let nodes = parser.sequence(stoppingAt: [])
        var boundaries: Set<Int> = [steps]
        resolve(nodes, steps: steps, into: &boundaries)
        return boundaries.sorted().map { ScheduledText(endStep: $0, text: render(nodes, at: $0, steps: steps)) }
    }

    /// A parsed piece of a prompt.
    indirect enum Node: Equatable {
        /// Text as written.
        case text(String)
        /// Brackets kept in the text around their contents: `(…)`, `(…:w)`, `[…]`.
        case group(open: String, [Node], close: String)
        /// `[before:after:when]`; `before` nil for `[after:when]`.
        case scheduled(before: [Node]?, after: [Node], when: String)
        /// `[a|b|…]`.
        case alternate([[Node]])
    }

    /// The step a `when` names, as the web UI computes it: a fraction of `steps` if written with a point, else a step
    /// number; at most `steps`.
    static func step(_ when: String, steps: Int) -> Int {
        let value = Double(when) ?? 0
        return min(steps, Int(when.contains(".") ? value * Double(steps) : value))
    }

    private static func resolve(_ nodes: [Node], steps: Int, into boundaries: inout Set<Int>) {
        for node in nodes {
            switch node {
            case .text: break
            case .group(_, let inner, _): resolve(inner, steps: steps, into: &boundaries)
            case .scheduled(let before, let after, let when):
                let at = step(when, steps: steps)
                if at >= 1 { boundaries.insert(at) }
                resolve((before ?? []) + after, steps: steps, into: &boundaries)
            case .alternate(let options):
                if steps >= 1 { boundaries.formUnion(1...steps) }
                for option in options { resolve(option, steps: steps, into: &boundaries) }
            }
        }
    }

    private static func render(_ nodes: [Node], at step: Int, steps: Int) -> String {
        nodes.map { node -> String in
            switch node {
            case .text(let text): return text
            case .group(let open, let inner, let close): return open + render(inner, at: step, steps: steps) + close
            case .scheduled(let before, let after, let when):
                return step <= Self.step(when, steps: steps) ? render(before ?? [], at: step, steps: steps) : render(after, at: step, steps: steps)
            case .alternate(let options): return render(options[(step - 1) % options.count], at: step, steps: steps)
            }
        }.joined()
    }

    /// A recursive-descent parser over the web UI's grammar; a bracket that opens no valid construct is text.
    struct Parser {
        let characters: [Character]
        var position = 0

        init(_ characters: [Character]) { self.characters = characters }

        private var current: Character? { position < characters.count ? characters[position] : nil }

        /// Nodes up to (not including) a character of `stops` or the end.
        mutating func sequence(stoppingAt stops: Set<Character>) -> [Node] {
            var nodes: [Node] = []
            var text = ""
            func flush() {
                if !text.isEmpty { nodes.append(.text(text)) }
                text = ""
            }
            while let character = current, !stops.contains(character) {
                if character == "\\" {
                    text.append(character)
                    position += 1
                    if let next = current {
                        text.append(next)
                        position += 1
                    }
                } else if character == "(" || character == "[" {
                    let start = position
                    if let node = character == "(" ? parenthesized() : bracketed() {
                        flush()
                        nodes.append(node)
                    } else {
                        position = start + 1
                        text.append(character)
                    }
                } else {
                    text.append(character)
                    position += 1
                }
            }
            flush()
            return nodes
        }

        /// Where a bracket's contents stop.
        private static let inner: Set<Character> = [")", "]", ":", "|"]

        /// `(prompt)` or `(prompt:prompt)`.
        private mutating func parenthesized() -> Node? {
            position += 1
            var inner = sequence(stoppingAt: Self.inner)
            if current == ":" {
                position += 1
                inner = inner + [.text(":")] + sequence(stoppingAt: Self.inner)
            }
            guard current == ")" else { return nil }
            position += 1
            return .group(open: "(", inner, close: ")")
        }

        /// `[prompt]`, `[a|b|…]`, `[to:when]`, `[from:to:when]` or `[from::when]`.
        private mutating func bracketed() -> Node? {
            position += 1
            let first = sequence(stoppingAt: Self.inner)
            switch current {
            case "]":
                position += 1
                return .group(open: "[", first, close: "]")
            case "|":
                var options = [first]
                while current == "|" {
                    position += 1
                    options.append(sequence(stoppingAt: Self.inner))
                }
                guard current == "]" else { return nil }
                position += 1
                return .alternate(options)
            case ":":
                position += 1
                let second = sequence(stoppingAt: Self.inner)
                if current == "]", let when = Self.number(second) {
                    position += 1
                    return .scheduled(before: nil, after: first, when: when)
                }
                guard current == ":" else { return nil }
                position += 1
                let number = sequence(stoppingAt: Self.inner)
                guard current == "]", let when = Self.number(number) else { return nil }
                position += 1
                return .scheduled(before: first, after: second, when: when)
            default:
                return nil
            }
        }

        /// The number a `when` holds (whitespace around it allowed), as written; nil if it is not one.
        private static func number(_ nodes: [Node]) -> String? {
            guard nodes.count == 1, case .text(let text) = nodes[0] else { return nil }
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                trimmed.filter({ $0 == "." }).count <= 1, trimmed != "."
            else { return nil }
            return trimmed
        }
    }
}
