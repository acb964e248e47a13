import Foundation

/// Reads evaluation files: whole UTF-8 text, with errors that name the file.
enum TextFile {
    static func read(_ path: String) throws(EvaluationError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadableFile(file: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            // name the first offending line so the user can find it
            let line =
                data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                .firstIndex { String(data: Data($0), encoding: .utf8) == nil }.map { $0 + 1 } ?? 1
            throw .malformedData(file: path, line: line, problem: "not UTF-8 text")
        }
        return text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
    }

    /// Whether `path` is a folder (a folder of MMLU subjects, say) rather than a file.
    static func isFolder(_ path: String) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
    }

    /// Non-empty lines of a JSONL file as JSON objects, with their line numbers.
    static func jsonLines(_ path: String) throws(EvaluationError) -> [(line: Int, object: [String: Any])] {
        var records: [(Int, [String: Any])] = []
        for (index, line) in try read(path).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
                throw .malformedData(file: path, line: index + 1, problem: "not a JSON object")
            }
            records.append((index + 1, object))
        }
        return records
    }
}
