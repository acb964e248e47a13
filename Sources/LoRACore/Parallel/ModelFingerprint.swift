import Foundation

/// A model's identity, cheap for files of many GiB: SHA-256 of the file's size, its first
/// 8 MiB (a GGUF's metadata and tensor table, a safetensors header) and 64 KiB at each of 256
/// evenly spaced offsets. For a checkpoint folder, of each file's name and fingerprint in
/// name order. What the ranks of a job compare before training together.
enum ModelFingerprint {
    static func of(_ path: String) throws(LoRAError) -> String {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw .unreadableFile(file: path, reason: "no such file")
        }
        guard isFolder.boolValue else { return try file(path) }
        var listing = ""
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() {
            var isSubfolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: "\(path)/\(name)", isDirectory: &isSubfolder), !isSubfolder.boolValue {
                listing += "\(name) \(try file("\(path)/\(name)"))\n"
            }
        }
        return SHA256.hex(of: Array(listing.utf8))
    }

    private static func file(_ path: String) throws(LoRAError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .unreadableFile(file: path, reason: "cannot open") }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        var hasher = SHA256()
        withUnsafeBytes(of: size.littleEndian) { hasher.update($0) }
        let samples = [(0, 8 << 20)] + (0..<256).map { (Int(size) / 256 * $0, 64 << 10) }
        for (offset, length) in samples where offset < size {
            do {
                try handle.seek(toOffset: UInt64(offset))
                hasher.update(try handle.read(upToCount: length) ?? Data())
            } catch {
                throw .unreadableFile(file: path, reason: "\(error)")
            }
        }
        return hasher.finalize()
    }
}
