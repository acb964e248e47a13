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
