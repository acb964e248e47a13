import Foundation

/// `train_log.jsonl`: one `TrainingStepReport` a line, as JSON with sorted keys, appended by
/// the trainer after each step. The one reader and writer of the format.
public enum TrainingLog {
    public static let fileName = "train_log.jsonl"

    /// The reports in the log at `path`, in order. A line that is not a report is an error
    /// naming the file and line, with one exception: a last line without its newline that
    /// does not parse is an append cut short by a kill, which a resumed run rewrites.
    public static func read(_ path: String) throws(LoRAError) -> [TrainingStepReport] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadableFile(file: path, reason: "no such file, or it cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw .malformedFile(file: path, problem: "not UTF-8 text") }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var reports: [TrainingStepReport] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            do {
                reports.append(try JSONDecoder().decode(TrainingStepReport.self, from: Data(line.utf8)))
            } catch {
                if index == lines.count - 1 { break } // the torn last append
                throw .malformedRecord(file: path, line: index + 1, problem: "not a training log line (\(error))")
            }
        }
        return reports
    }

    /// The line a report takes in the log, newline included.
    static func line(_ report: TrainingStepReport) -> Data {
        var line = try! JSONEncoder.sorted.encode(report)
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// Appends a report to the log at `path`, which must exist.
    static func append(_ report: TrainingStepReport, to path: String) throws(LoRAError) {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw .unwritableFile(file: path, reason: "cannot open for appending")
        }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: line(report))
        } catch {
            throw .unwritableFile(file: path, reason: error.localizedDescription)
        }
    }

    /// Writes `reports` as the whole log at `path`, atomically.
    static func write(_ reports: [TrainingStepReport], to path: String) throws(LoRAError) {
        try AtomicFile.write(reports.reduce(into: Data()) { $0.append(line($1)) }, to: path)
    }
}

/// A trainer's `checkpoint-N` folder: the adapter, AdamW's moments and the trainer state
/// after optimizer step N. The one place that names and parses these folders.
public struct CheckpointFolder: Sendable, Equatable, Codable {
    public let step: Int
    public let path: String

    /// The folder name for step `step`.
    public static func name(step: Int) -> String { "checkpoint-\(step)" }

    /// The step a folder name stands for (`checkpoint-20` → 20), nil for any other name.
    public static func step(ofName name: String) -> Int? {
        guard name.hasPrefix("checkpoint-"), let step = Int(name.dropFirst("checkpoint-".count)), step >= 0,
            name == Self.name(step: step)
        else { return nil }
        return step
    }

    /// The checkpoints in `folder` (a trainer's output), oldest first; none when it is missing.
    public static func all(in folder: String) -> [CheckpointFolder] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.compactMap { name in step(ofName: name).map { CheckpointFolder(step: $0, path: "\(folder)/\(name)") } }
            .sorted { $0.step < $1.step }
    }
}
