/// A minimal reader of the zip archives `torch.save` writes: the central directory
/// (zip64 included, as written for files over 4 GB) and the bytes of stored entries,
/// read in place from a memory-mapped file. Every offset and length read from the file is
/// checked against the file's size before use, so a damaged archive is an error, never a
/// read out of bounds or an allocation sized by the file's claims.
struct ZipArchive {
    /// One file in the archive, as its central-directory record describes it.
    struct Entry {
        let name: String
        /// 0 = stored (what torch writes), 8 = deflate, anything else is unusual.
        let method: UInt16
        let flags: UInt16
        let crc32: UInt32
        let compressedSize: Int
        let size: Int
        /// Where the entry's bytes start, past its local header.
        let dataOffset: Int
    }

    private static let endOfCentralDirectory: UInt32 = 0x0605_4B50
    private static let zip64EndOfCentralDirectory: UInt32 = 0x0606_4B50
    private static let zip64Locator: UInt32 = 0x0706_4B50
    private static let centralHeader: UInt32 = 0x0201_4B50
    private static let localHeader: UInt32 = 0x0403_4B50
    private static let pickleProtocolOpcode: UInt8 = 0x80

    private let file: MappedFile
    /// Entries in central-directory order.
    let entries: [Entry]
    private let index: [String: Int]

    /// Reads the central directory of `file` and locates every entry's bytes.
    init(_ file: MappedFile) throws(CheckpointError) {
        self.file = file
        let bytes = Bytes(file.bytes)
        let directory = try Self.locateCentralDirectory(bytes)
        var entries: [Entry] = []
        entries.reserveCapacity(directory.count)
        var index: [String: Int] = [:]
        var cursor = directory.offset
        let directoryEnd = directory.offset + directory.size
        for _ in 0..<directory.count {
            let entry = try Self.readCentralEntry(
                bytes, at: &cursor, directoryEnd: directoryEnd,
                dataLimit: directory.offset)
            guard index.updateValue(entries.count, forKey: entry.name) == nil else {
                throw damaged("the archive lists '\(entry.name)' twice")
            }
            entries.append(entry)
        }
        self.entries = entries
        self.index = index
    }

    /// The entry called `name`, if the archive has one.
    func entry(named name: String) -> Entry? {
        index[name].map { entries[$0] }
    }

    /// The bytes of a stored entry, in place in the mapping (valid while the archive is alive).
    func contents(of entry: Entry) throws(CheckpointError) -> UnsafeRawBufferPointer {
        guard entry.flags & 1 == 0 else {
            throw CheckpointError(.unsupportedArchive, "entry '\(entry.name)' is encrypted; decrypt the archive first")
        }
        guard entry.method == 0 else {
            let method = entry.method == 8 ? "deflate-compressed" : "compressed with method \(entry.method)"
            throw CheckpointError(
                .unsupportedArchive,
                "entry '\(entry.name)' is \(method); only stored (uncompressed) "
                    + "entries are read, as torch.save writes them: re-save the checkpoint with torch.save or convert it "
                    + "to .safetensors")
        }
        return UnsafeRawBufferPointer(rebasing: file.bytes[entry.dataOffset..<entry.dataOffset + entry.size])
    }

    /// Checks a stored entry's bytes against its CRC-32.
    func verify(_ entry: Entry) throws(CheckpointError) {
        guard CRC32.checksum(try contents(of: entry)) == entry.crc32 else { throw Self.checksumMismatch(entry) }
    }

    /// The error for an entry whose bytes do not match its CRC-32.
    static func checksumMismatch(_ entry: Entry) -> CheckpointError {
        CheckpointError(
            .checksumMismatch,
            "entry '\(entry.name)' does not match its CRC-32; the file is damaged "
                + "(an interrupted download or copy?): download it again")
    }

    private struct CentralDirectory {
        var offset: Int, size: Int, count: Int
    }

    private static func locateCentralDirectory(_ bytes: Bytes) throws(CheckpointError) -> CentralDirectory {
        let fixedSize = 22
        guard bytes.count >= fixedSize else {
            throw CheckpointError(
                .notZipArchive,
                "the file is \(bytes.count) bytes, too short to be a zip archive; "
                    + "it is truncated or not a PyTorch checkpoint")
        }
        // The record ends the file, followed only by its comment (≤ 65535 bytes); requiring
        // the comment to reach exactly the end keeps a signature inside the data from matching.
        var found: Int?
        var candidate = bytes.count - fixedSize
        let lowest = max(0, candidate - 0xFFFF)
        while candidate >= lowest {
            if bytes.unchecked32(candidate) == endOfCentralDirectory,
                candidate + fixedSize + Int(bytes.unchecked16(candidate + 20)) == bytes.count
            {
                found = candidate
                break
            }
            candidate -= 1
        }
        guard let end = found else {
            if bytes.count > 2, bytes.unchecked8(0) == pickleProtocolOpcode {
                throw CheckpointError(
                    .notZipArchive,
                    "this is PyTorch's legacy (pre-1.6) checkpoint format, which "
                        + "is not read: re-save it with torch.save in PyTorch 1.6 or later, or convert it to .safetensors")
            }
            throw CheckpointError(
                .notZipArchive,
                "no zip end-of-central-directory record: the file is truncated "
                    + "or not a PyTorch checkpoint; download it again")
        }
        var directory = CentralDirectory(
            offset: Int(bytes.unchecked32(end + 16)),
            size: Int(bytes.unchecked32(end + 12)),
            count: Int(bytes.unchecked16(end + 10)))
        let disk = bytes.unchecked16(end + 4)
        let directoryDisk = bytes.unchecked16(end + 6)
        if end >= 20, bytes.unchecked32(end - 20) == zip64Locator {
            let recordOffset = try bytes.offset64(end - 20 + 8, "zip64 end-of-central-directory offset")
            guard try bytes.u32(recordOffset, "zip64 end-of-central-directory record") == zip64EndOfCentralDirectory,
                recordOffset + 56 <= end - 20
            else {
                throw damaged("the zip64 locator points at no zip64 end-of-central-directory record")
            }
            guard try bytes.u32(recordOffset + 16, "zip64 disk number") == 0,
                try bytes.u32(recordOffset + 20, "zip64 directory disk") == 0
            else {
                throw multiDisk()
            }
            let zip64 = CentralDirectory(
                offset: try bytes.offset64(recordOffset + 48, "central directory offset"),
                size: try bytes.offset64(recordOffset + 40, "central directory size"),
                count: try bytes.offset64(recordOffset + 32, "entry count"))
            // torch writes both records even for small files; a field the classic record does not
            // saturate must agree with its zip64 twin, or one of them was damaged.
            guard directory.offset == 0xFFFF_FFFF || directory.offset == zip64.offset,
                directory.size == 0xFFFF_FFFF || directory.size == zip64.size,
                directory.count == 0xFFFF || directory.count == zip64.count
            else {
                throw damaged("the zip and zip64 end-of-central-directory records disagree")
            }
            directory = zip64
        } else if disk != 0 || directoryDisk != 0 {
            throw multiDisk()
        }
        guard directory.offset <= end, directory.size <= end - directory.offset else {
            throw damaged(
                "the central directory (offset \(directory.offset), \(directory.size) bytes) lies outside "
                    + "the file")
        }
        // Each record is at least 46 bytes, so the count cannot claim more entries than fit.
        guard directory.count <= directory.size / 46 else {
            throw damaged("the archive claims \(directory.count) entries in a \(directory.size)-byte central directory")
        }
        return directory
    }

    private static func readCentralEntry(
        _ bytes: Bytes, at cursor: inout Int, directoryEnd: Int,
        dataLimit: Int
    ) throws(CheckpointError) -> Entry {
        let start = cursor
        guard start + 46 <= directoryEnd, try bytes.u32(start, "central directory record") == centralHeader else {
            throw damaged("the central directory record at offset \(start) is missing")
        }
        let flags = try bytes.u16(start + 8, "flags")
        let method = try bytes.u16(start + 10, "method")
        let crc = try bytes.u32(start + 16, "crc")
        var compressedSize = UInt64(try bytes.u32(start + 20, "compressed size"))
        var size = UInt64(try bytes.u32(start + 24, "size"))
        let nameLength = Int(try bytes.u16(start + 28, "name length"))
        let extraLength = Int(try bytes.u16(start + 30, "extra length"))
        let commentLength = Int(try bytes.u16(start + 32, "comment length"))
        var localOffset = UInt64(try bytes.u32(start + 42, "local header offset"))
        let end = start + 46 + nameLength + extraLength + commentLength
        guard end <= directoryEnd else {
            throw damaged("the central directory record at offset \(start) runs past the directory")
        }
        let nameBytes = try bytes.slice(start + 46, nameLength, "entry name")
        let name = String(decoding: nameBytes, as: UTF8.self)

        // Zip64 extra field: the 64-bit values of whichever 32-bit fields are saturated, in this order.
        var extra = start + 46 + nameLength
        let extraEnd = extra + extraLength
        while extra + 4 <= extraEnd {
            let id = try bytes.u16(extra, "extra field id")
            let length = Int(try bytes.u16(extra + 2, "extra field length"))
            guard extra + 4 + length <= extraEnd else {
                throw damaged("entry '\(name)' has an extra field running past its record")
            }
            if id == 1 {
                var field = extra + 4
                func next() throws(CheckpointError) -> UInt64 {
                    guard field + 8 <= extra + 4 + length else {
                        throw damaged("entry '\(name)' has a short zip64 extra field")
                    }
                    defer { field += 8 }
                    return try bytes.u64(field, "zip64 extra field")
                }
                if size == 0xFFFF_FFFF { size = try next() }
                if compressedSize == 0xFFFF_FFFF { compressedSize = try next() }
                if localOffset == 0xFFFF_FFFF { localOffset = try next() }
            }
            extra += 4 + length
        }
        cursor = end

        // The entry's bytes must lie before the central directory, past a local header naming it alike.
        guard localOffset <= UInt64(dataLimit), compressedSize <= UInt64(dataLimit), size <= UInt64(Int.max) else {
            throw damaged(
                "entry '\(name)' claims offset \(localOffset) and \(compressedSize) bytes, beyond the "
                    + "archive's data")
        }
        let local = Int(localOffset)
        guard local + 30 <= dataLimit, try bytes.u32(local, "local header") == localHeader else {
            throw damaged("entry '\(name)' has no local header at offset \(local)")
        }
        let localNameLength = Int(try bytes.u16(local + 26, "local name length"))
        let localExtraLength = Int(try bytes.u16(local + 28, "local extra length"))
        let dataOffset = local + 30 + localNameLength + localExtraLength
        guard dataOffset <= dataLimit, Int(compressedSize) <= dataLimit - dataOffset else {
            throw damaged(
                "entry '\(name)' (\(compressedSize) bytes at offset \(dataOffset)) runs past the archive's "
                    + "data")
        }
        guard try bytes.slice(local + 30, localNameLength, "local name").elementsEqual(nameBytes) else {
            throw damaged("entry '\(name)' has a local header naming another file")
        }
        if method == 0, compressedSize != size {
            throw damaged("stored entry '\(name)' claims \(size) bytes but occupies \(compressedSize)")
        }
        return Entry(
            name: name, method: method, flags: flags, crc32: crc, compressedSize: Int(compressedSize),
            size: Int(size), dataOffset: dataOffset)
    }
}

/// A damaged-archive error: `problem`, and what to do about it.
private func damaged(_ problem: String) -> CheckpointError {
    CheckpointError(.corruptArchive, problem + "; the file is truncated or damaged: download it again")
}

private func multiDisk() -> CheckpointError {
    CheckpointError(.unsupportedArchive, "multi-disk (split) zip archives are not read; join the parts into one file")
}

/// Little-endian reads from a buffer, each checked against its end (the `unchecked` ones are
/// for offsets the caller has already bounded).
private struct Bytes {
    let buffer: UnsafeRawBufferPointer
    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
    var count: Int { buffer.count }

    func unchecked8(_ offset: Int) -> UInt8 { buffer.load(fromByteOffset: offset, as: UInt8.self) }
    func unchecked16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    func unchecked32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    private func check(_ offset: Int, _ length: Int, _ what: String) throws(CheckpointError) {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            throw damaged("the \(what) at offset \(offset) lies past the end of the file (\(count) bytes)")
        }
    }

    func u16(_ offset: Int, _ what: String) throws(CheckpointError) -> UInt16 {
        try check(offset, 2, what)
        return unchecked16(offset)
    }

    func u32(_ offset: Int, _ what: String) throws(CheckpointError) -> UInt32 {
        try check(offset, 4, what)
        return unchecked32(offset)
    }

    func u64(_ offset: Int, _ what: String) throws(CheckpointError) -> UInt64 {
        try check(offset, 8, what)
        return UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A 64-bit offset or size, which must fit in the file to be meaningful.
    func offset64(_ offset: Int, _ what: String) throws(CheckpointError) -> Int {
        let value = try u64(offset, what)
        guard value <= UInt64(count) else {
            throw damaged("the \(what) (\(value)) exceeds the file's \(count) bytes")
        }
        return Int(value)
    }

    func slice(_ offset: Int, _ length: Int, _ what: String) throws(CheckpointError) -> UnsafeRawBufferPointer {
        try check(offset, length, what)
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + length])
    }
}
