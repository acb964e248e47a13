import Foundation

/// Writes that a crash or a kill never leaves half done: the data goes to a temporary
/// sibling first and is renamed over the target (rename is atomic within a file system).
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws(LoRAError) {
        let temporary = "\(path).tmp-\(getpid())"
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw .unwritableFile(file: path, reason: "\(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .unwritableFile(file: path, reason: reason)
        }
    }

    /// Streams a file: `body` writes pieces with the function it is given (a tensor at a time,
    /// so a large file never sits in memory whole) into a temporary sibling, renamed to `path`
    /// when `body` returns; on an error the temporary file is removed.
    public static func stream(to path: String, _ body: ((Data) throws(LoRAError) -> Void) throws(LoRAError) -> Void) throws(LoRAError) {
        let temporary = "\(path).tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw .unwritableFile(file: path, reason: "cannot create \(temporary)")
        }
        do throws(LoRAError) {
            defer { try? handle.close() }
            try body { (data: Data) throws(LoRAError) in
                do { try handle.write(contentsOf: data) } catch { throw .unwritableFile(file: path, reason: error.localizedDescription) }
            }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .unwritableFile(file: path, reason: reason)
        }
    }

    /// Fills a temporary sibling folder with `fill`, then renames it to `path` (replacing a
    /// folder already there): readers see the old folder or the whole new one.
    public static func writeFolder(_ path: String, _ fill: (String) throws(LoRAError) -> Void) throws(LoRAError) {
        let fm = FileManager.default
        let temporary = "\(path).tmp-\(getpid())"
        try? fm.removeItem(atPath: temporary)
        do {
            try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        } catch {
            throw .unwritableFile(file: path, reason: "\(error.localizedDescription)")
        }
        try fill(temporary)
        let old = "\(path).old-\(getpid())"
        let replacing = fm.fileExists(atPath: path)
        if replacing { guard rename(path, old) == 0 else { throw .unwritableFile(file: path, reason: String(cString: strerror(errno))) } }
        guard rename(temporary, path) == 0 else { throw .unwritableFile(file: path, reason: String(cString: strerror(errno))) }
        if replacing { try? fm.removeItem(atPath: old) }
    }
}
