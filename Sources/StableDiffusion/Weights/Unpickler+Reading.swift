import Foundation

/// Reading the pickle's bytes and text arguments, and the errors that name where it went wrong.
extension Unpickler {
    func byte() throws(CheckpointError) -> UInt8 {
        guard position < input.count else { throw truncated() }
        defer { position += 1 }
        return input[position]
    }

    func take(_ length: Int) throws(CheckpointError) -> UnsafeRawBufferPointer {
        guard length <= input.count - position else { throw truncated() }
        defer { position += length }
        return UnsafeRawBufferPointer(rebasing: input[position..<position + length])
    }

    func raw<T: FixedWidthInteger>(_ type: T.Type) throws(CheckpointError) -> T {
        try take(MemoryLayout<T>.size).loadUnaligned(as: T.self)
    }

    func uint16() throws(CheckpointError) -> UInt16 { UInt16(littleEndian: try raw(UInt16.self)) }
    func uint32() throws(CheckpointError) -> UInt32 { UInt32(littleEndian: try raw(UInt32.self)) }
    func uint64() throws(CheckpointError) -> UInt64 { UInt64(littleEndian: try raw(UInt64.self)) }

    /// Bytes whose length the pickle claims: checked against the cap and against what is left,
    /// before anything is allocated.
    func bytes(length: UInt64) throws(CheckpointError) -> [UInt8] {
        Array(try stringBytes(length: length))
    }

    func stringBytes(length: UInt64) throws(CheckpointError) -> UnsafeRawBufferPointer {
        guard length <= UInt64(limits.stringBytes) else {
            throw limit("a \(length)-byte string (at most \(limits.stringBytes))")
        }
        return try take(Int(length))
    }

    func utf8(length: UInt64) throws(CheckpointError) -> String {
        String(decoding: try stringBytes(length: length), as: UTF8.self)
    }

    func latin1(_ bytes: [UInt8]) -> String {
        String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }

    /// A newline-terminated argument of the text opcodes.
    func line() throws(CheckpointError) -> String {
        let rest = UnsafeRawBufferPointer(rebasing: input[position...])
        let limit = min(rest.count, limits.stringBytes)
        guard let end = rest.prefix(limit).firstIndex(of: UInt8(ascii: "\n")) else { throw truncated() }
        position += end + 1
        var text = String(decoding: rest[..<end], as: UTF8.self)
        if text.hasSuffix("\r") { text.removeLast() }
        return text
    }

    func integer(_ text: String) throws(CheckpointError) -> PickleValue {
        if let value = Int(text) { return .int(value) }
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else {
            throw malformed("integer with unreadable text '\(text.prefix(40))'")
        }
        return .bigInt
    }

    func index(_ text: String) throws(CheckpointError) -> Int {
        guard let value = Int(text), value >= 0 else {
            throw malformed("memo index '\(text.prefix(40))' is not a number")
        }
        return value
    }

    /// LONG1/LONG4: little-endian two's complement of `length` bytes.
    func long(length: Int) throws(CheckpointError) -> PickleValue {
        let bytes = try take(length)
        guard length <= 8 else { return .bigInt }
        guard length > 0 else { return .int(0) }
        var value: UInt64 = 0
        for (shift, byte) in bytes.enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
        if bytes[length - 1] & 0x80 != 0, length < 8 { value |= ~0 << (8 * UInt64(length)) }
        return .int(Int(Int64(bitPattern: value)))
    }

    /// STRING: a Python repr in quotes, e.g. `'a\x00b'`.
    func quotedString(_ text: String) throws(CheckpointError) -> String {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count >= 2, let quote = scalars.first, quote == "'" || quote == "\"", scalars.last == quote else {
            throw malformed("STRING argument is not quoted")
        }
        var result = String.UnicodeScalarView()
        var index = 1
        while index < scalars.count - 1 {
            let scalar = scalars[index]
            index += 1
            guard scalar == "\\", index < scalars.count - 1 else {
                result.append(scalar)
                continue
            }
            let escaped = scalars[index]
            index += 1
            switch escaped {
            case "n": result.append("\n")
            case "t": result.append("\t")
            case "r": result.append("\r")
            case "0": result.append("\0")
            case "x":
                guard index + 2 <= scalars.count - 1,
                    let code = UInt8(String(String.UnicodeScalarView(scalars[index..<index + 2])), radix: 16)
                else {
                    throw malformed("STRING has a bad \\x escape")
                }
                result.append(Unicode.Scalar(code))
                index += 2
            default: result.append(escaped)
            }
        }
        return String(result)
    }

    /// UNICODE: raw-unicode-escape text, where only `\uXXXX` and `\UXXXXXXXX` are escapes.
    func rawUnicodeEscape(_ text: String) throws(CheckpointError) -> String {
        let scalars = Array(text.unicodeScalars)
        var result = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\\", index + 1 < scalars.count, scalars[index + 1] == "u" || scalars[index + 1] == "U" {
                let width = scalars[index + 1] == "u" ? 4 : 8
                guard index + 2 + width <= scalars.count,
                    let code = UInt32(
                        String(String.UnicodeScalarView(scalars[index + 2..<index + 2 + width])),
                        radix: 16),
                    let decoded = Unicode.Scalar(code)
                else {
                    throw malformed("UNICODE has a bad \\u escape")
                }
                result.append(decoded)
                index += 2 + width
            } else {
                result.append(scalar)
                index += 1
            }
        }
        return String(result)
    }

    // MARK: - Errors

    func malformed(_ problem: String) -> CheckpointError {
        CheckpointError(
            .malformedPickle,
            "malformed pickle at byte \(opcodeStart): \(problem); the file is damaged "
                + "or was not written by torch.save: download it again")
    }

    func truncated() -> CheckpointError {
        malformed("an opcode's argument runs past the end of the pickle (truncated)")
    }

    func limit(_ what: String) -> CheckpointError {
        CheckpointError(
            .limitExceeded,
            "the pickle holds \(what), beyond this loader's cap; SD checkpoints stay far "
                + "below it, so the file is damaged or hostile")
    }

    func unsupportedCall(_ global: AllowedGlobal, _ what: String) -> CheckpointError {
        CheckpointError(
            .unsupportedContent,
            "\(global.name) is used with \(what), which torch.save never writes; "
                + "this is not a plain PyTorch checkpoint")
    }

    func refusedOpcode(_ name: String) -> CheckpointError {
        CheckpointError(.unsupportedContent, "pickle opcode \(name) is not supported; torch.save never writes it")
    }
}
