// A small gzip (RFC 1952) / DEFLATE (RFC 1951) decoder, so that the CLIP vocabulary can ship
// compressed without the engine linking zlib: StableDiffusion imports only Foundation and Tensors.

/// Why a gzip stream could not be decoded.
struct GzipError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// Decodes single-member gzip files.
enum Gzip {
    /// The decompressed bytes of a gzip file; the trailer's CRC-32 and length are checked.
    static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        try input.withUnsafeBufferPointer { bytes in
            let start = try payloadOffset(bytes)
            var inflater = Inflater(input: bytes, position: start)
            // The trailer's length is a hint only (it is the size mod 2³²), so it only sizes the buffer.
            if bytes.count >= 4 {
                let hint = Int(readUInt32LE(bytes, bytes.count - 4))
                inflater.output.reserveCapacity(min(hint, 1 << 28))
            }
            try inflater.run()
            let trailer = inflater.alignedBytePosition()
            guard trailer + 8 <= bytes.count else { throw GzipError(reason: "gzip trailer missing (file truncated)") }
            let crc = readUInt32LE(bytes, trailer)
            let size = readUInt32LE(bytes, trailer + 4)
            guard size == UInt32(truncatingIfNeeded: inflater.output.count) else {
                throw GzipError(reason: "gzip length mismatch: trailer says \(size), decoded \(inflater.output.count)")
            }
            guard crc == inflater.output.withUnsafeBytes({ CRC32.checksum($0) }) else {
                throw GzipError(reason: "gzip CRC-32 mismatch (file corrupt)")
            }
            return inflater.output
        }
    }

    /// Skips the gzip header and returns where the DEFLATE data starts.
    private static func payloadOffset(_ bytes: UnsafeBufferPointer<UInt8>) throws -> Int {
        guard bytes.count >= 18, bytes[0] == 0x1F, bytes[1] == 0x8B else { throw GzipError(reason: "not a gzip file") }
        guard bytes[2] == 8 else { throw GzipError(reason: "gzip compression method \(bytes[2]) is not DEFLATE") }
        let flags = bytes[3]
        var position = 10
        if flags & 0x04 != 0 {  // FEXTRA
            guard position + 2 <= bytes.count else { throw GzipError(reason: "gzip header truncated") }
            position += 2 + Int(bytes[position]) | Int(bytes[position + 1]) << 8
        }
        for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
            while position < bytes.count && bytes[position] != 0 { position += 1 }
            position += 1
        }
        if flags & 0x02 != 0 { position += 2 }  // FHCRC
        guard position < bytes.count else { throw GzipError(reason: "gzip header truncated") }
        return position
    }

    private static func readUInt32LE(_ bytes: UnsafeBufferPointer<UInt8>, _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}

/// A canonical Huffman code decoded by one table look-up on the next `maxBits` input bits.
private struct HuffmanTable {
    /// Indexed by the next `maxBits` bits (LSB first); entry = symbol << 4 | code length, 0 = no such code.
    var entries: [UInt16]
    var maxBits: Int

    init(lengths: ArraySlice<UInt8>) throws {
        var counts = [Int](repeating: 0, count: 16)
        for length in lengths { counts[Int(length)] += 1 }
        counts[0] = 0
        maxBits = max(1, counts.lastIndex { $0 != 0 } ?? 1)
        // Over-subscribed codes are invalid; incomplete ones are legal (a lone distance code).
        var left = 1
        for length in 1...15 {
            left = left << 1 - counts[length]
            guard left >= 0 else { throw GzipError(reason: "invalid DEFLATE stream: over-subscribed Huffman code") }
        }
        var nextCode = [Int](repeating: 0, count: 16)
        var code = 0
        for length in 1...15 {
            code = (code + counts[length - 1]) << 1
            nextCode[length] = code
        }
        entries = [UInt16](repeating: 0, count: 1 << maxBits)
        for (offset, length8) in lengths.enumerated() where length8 != 0 {
            let length = Int(length8)
            let code = nextCode[length]
            nextCode[length] += 1
            var reversed = 0
            for bit in 0..<length where code & (1 << bit) != 0 { reversed |= 1 << (length - 1 - bit) }
            let entry = UInt16(offset << 4 | length)
            for index in stride(from: reversed, to: entries.count, by: 1 << length) { entries[index] = entry }
        }
    }
}

/// The DEFLATE block decoder: an LSB-first bit reader over the input and the growing output.
private struct Inflater {
    let input: UnsafeBufferPointer<UInt8>
    var position: Int
    var bits: UInt64 = 0
    var bitCount = 0
    var output: [UInt8] = []

    init(input: UnsafeBufferPointer<UInt8>, position: Int) {
        self.input = input
        self.position = position
    }

    private static let lengthBase: [Int] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
        35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
    ]
    private static let lengthExtra: [Int] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ]
    private static let distanceBase: [Int] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
        513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ]
    private static let distanceExtra: [Int] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
        8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
    ]
    private static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    /// Keeps at least 56 bits buffered; past the end it feeds zeros and `checkOverrun` catches that.
    @inline(__always) private mutating func refill() {
        while bitCount <= 56 {
            let byte: UInt64 = position < input.count ? UInt64(input[position]) : 0
            bits |= byte << UInt64(bitCount)
            bitCount += 8
            position += 1
        }
    }

    @inline(__always) private mutating func take(_ count: Int) -> Int {
        if bitCount < count { refill() }
        let value = Int(bits & ((1 << UInt64(count)) - 1))
        bits >>= UInt64(count)
        bitCount -= count
        return value
    }

    @inline(__always) private mutating func decode(_ table: HuffmanTable) throws -> Int {
        if bitCount < table.maxBits { refill() }
        let entry = Int(table.entries[Int(bits & ((1 << UInt64(table.maxBits)) - 1))])
        let length = entry & 15
        guard length != 0 else { throw GzipError(reason: "invalid DEFLATE stream: unknown Huffman code") }
        bits >>= UInt64(length)
        bitCount -= length
        return entry >> 4
    }

    private func checkOverrun() throws {
        guard position - bitCount / 8 <= input.count else { throw GzipError(reason: "DEFLATE data truncated") }
    }

    /// The input offset just after the last DEFLATE byte (the gzip trailer starts there).
    func alignedBytePosition() -> Int { position - bitCount / 8 }

    mutating func run() throws {
        var isFinal = false
        while !isFinal {
            isFinal = take(1) == 1
            switch take(2) {
            case 0: try storedBlock()
            case 1:
                let fixed = try Self.fixedTables()
                try codesBlock(literals: fixed.0, distances: fixed.1)
            case 2:
                let dynamic = try dynamicTables()
                try codesBlock(literals: dynamic.0, distances: dynamic.1)
            default: throw GzipError(reason: "invalid DEFLATE stream: block type 3")
            }
            try checkOverrun()
        }
    }

    private mutating func storedBlock() throws {
        _ = take(bitCount % 8)
        let length = take(16)
        let complement = take(16)
        guard length == ~complement & 0xFFFF else { throw GzipError(reason: "invalid DEFLATE stream: stored length check") }
        for _ in 0..<length { output.append(UInt8(take(8))) }
    }

    private static func fixedTables() throws -> (HuffmanTable, HuffmanTable) {
        var lengths = [UInt8](repeating: 8, count: 288)
        for index in 144..<256 { lengths[index] = 9 }
        for index in 256..<280 { lengths[index] = 7 }
        return (try HuffmanTable(lengths: lengths[...]), try HuffmanTable(lengths: [UInt8](repeating: 5, count: 30)[...]))
    }

    private mutating func dynamicTables() throws -> (HuffmanTable, HuffmanTable) {
        let literalCount = take(5) + 257
        let distanceCount = take(5) + 1
        let codeLengthCount = take(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw GzipError(reason: "invalid DEFLATE stream: too many codes") }
        var codeLengthLengths = [UInt8](repeating: 0, count: 19)
        for index in 0..<codeLengthCount { codeLengthLengths[Self.codeLengthOrder[index]] = UInt8(take(3)) }
        let codeLengths = try HuffmanTable(lengths: codeLengthLengths[...])
        var lengths: [UInt8] = []
        lengths.reserveCapacity(literalCount + distanceCount)
        while lengths.count < literalCount + distanceCount {
            let symbol = try decode(codeLengths)
            switch symbol {
            case 0...15: lengths.append(UInt8(symbol))
            case 16:
                guard let previous = lengths.last else { throw GzipError(reason: "invalid DEFLATE stream: repeat with no length") }
                lengths += repeatElement(previous, count: 3 + take(2))
            case 17: lengths += repeatElement(0, count: 3 + take(3))
            default: lengths += repeatElement(0, count: 11 + take(7))
            }
        }
        guard lengths.count == literalCount + distanceCount else { throw GzipError(reason: "invalid DEFLATE stream: code lengths overflow") }
        guard lengths[256] != 0 else { throw GzipError(reason: "invalid DEFLATE stream: no end-of-block code") }
        return (try HuffmanTable(lengths: lengths[..<literalCount]), try HuffmanTable(lengths: lengths[literalCount...]))
    }

    private mutating func codesBlock(literals: HuffmanTable, distances: HuffmanTable) throws {
        while true {
            // The reader feeds zeros past the end, which can decode as literals forever.
            guard position <= input.count + 8 else { throw GzipError(reason: "DEFLATE data truncated") }
            let symbol = try decode(literals)
            if symbol < 256 {
                output.append(UInt8(symbol))
                continue
            }
            if symbol == 256 { return }
            let lengthIndex = symbol - 257
            guard lengthIndex < 29 else { throw GzipError(reason: "invalid DEFLATE stream: length symbol \(symbol)") }
            let length = Self.lengthBase[lengthIndex] + take(Self.lengthExtra[lengthIndex])
            let distanceIndex = try decode(distances)
            guard distanceIndex < 30 else { throw GzipError(reason: "invalid DEFLATE stream: distance symbol \(distanceIndex)") }
            let distance = Self.distanceBase[distanceIndex] + take(Self.distanceExtra[distanceIndex])
            guard distance <= output.count else { throw GzipError(reason: "invalid DEFLATE stream: distance beyond output") }
            // Byte by byte: a copy may overlap the bytes it is producing (distance < length).
            var from = output.count - distance
            for _ in 0..<length {
                output.append(output[from])
                from += 1
            }
        }
    }
}
