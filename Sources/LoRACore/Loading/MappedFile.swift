#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file mapped read-only into memory. Model files are read through the mapping so that
/// only the pages a loader touches are ever resident, and `release` hands them back once
/// their tensors have been converted: peak memory stays near the converted model's size.
final class MappedFile: @unchecked Sendable {
    let path: String
    let bytes: UnsafeRawBufferPointer

    init(path: String) throws(LoRAError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .unreadableFile(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .unreadableFile(file: path, reason: String(cString: strerror(errno))) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw .unreadableFile(file: path, reason: "not a regular file") }
        let size = Int(status.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw .unreadableFile(file: path, reason: String(cString: strerror(errno)))
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    /// Drops the resident pages of `range` (they are re-read from disk if touched again).
    func release(_ range: Range<Int>) {
        guard let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = range.upperBound / page * page
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// A bounds-checked little-endian cursor over a file's bytes: every read either succeeds
/// or throws `truncatedFile` naming what was being read, so malformed input cannot crash.
struct ByteReader {
    let file: String
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(file: String, bytes: UnsafeRawBufferPointer) {
        self.file = file
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - offset }

    mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws(LoRAError) {
        guard count >= 0, count <= remaining else { throw .truncatedFile(file: file, what: what(), offset: offset) }
        offset += count
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(LoRAError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncatedFile(file: file, what: what(), offset: offset) }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    mutating func readBytes(_ count: Int, _ what: @autoclosure () -> String) throws(LoRAError) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw .truncatedFile(file: file, what: what(), offset: offset) }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
    }

    mutating func readString(count: Int, _ what: @autoclosure () -> String) throws(LoRAError) -> String {
        String(decoding: try readBytes(count, what()), as: UTF8.self)
    }
}
