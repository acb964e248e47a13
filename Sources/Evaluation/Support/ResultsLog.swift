import Foundation
import LoRACore

/// A JSONL file of per-item results written as they are produced, so an interrupted run
/// loses nothing: a header line (the evaluation's identity), then one line per item. On
/// reopening, a matching header resumes after the items already there; a different one is
/// an error rather than a silently mixed file. A last line cut off by a kill is dropped.
///
/// In a multi-process job rank 0 alone reads and writes the file; every rank holds the same
/// records (rank 0's on opening, then each appended one, which all ranks append in order).
final class ResultsLog<Record: Codable> {
    let path: String
    private(set) var records: [Record] = []
    private let handle: FileHandle?
    /// Keys sorted: the same record, the same line.
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    private struct Header<H: Codable>: Codable { let header: H }

    init<H: Codable>(path: String, header: H, group: ProcessGroup = .single) throws(EvaluationError) {
        self.path = path
        handle = group.isLeader ? try Self.open(path: path, header: header, encoder: encoder, records: &records) : nil
        do { records = try group.fromLeader(records) } catch { throw .model(error) }
    }

    private static func open<H: Codable>(path: String, header: H, encoder: JSONEncoder, records: inout [Record]) throws(EvaluationError)
        -> FileHandle
    {
        let fileManager = FileManager.default
        var kept = Data()
        if let data = fileManager.contents(atPath: path), !data.isEmpty {
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            guard let first = lines.first, let existing = try? JSONDecoder().decode(Header<H>.self, from: Data(first)) else {
                throw .mismatchedResults(
                    file: path, problem: "not a results file of this kind (no header line): move it away or choose another output folder")
            }
            // compared as written: settings that do not change results (batch size) are not in the file
            guard (try? encoder.encode(existing)) == (try? encoder.encode(Header(header: header))) else {
                throw .mismatchedResults(
                    file: path,
                    problem: "written by an evaluation with other settings, model or data: move it away or choose another output folder")
            }
            kept.append(first)
            kept.append(UInt8(ascii: "\n"))
            for line in lines.dropFirst() where !line.isEmpty {
                guard let record = try? JSONDecoder().decode(Record.self, from: Data(line)) else { break } // cut off by a kill
                records.append(record)
                kept.append(line)
                kept.append(UInt8(ascii: "\n"))
            }
        } else {
            kept = (try? encoder.encode(Header(header: header))) ?? Data()
            kept.append(UInt8(ascii: "\n"))
        }
        do {
            try fileManager.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
            try kept.write(to: URL(fileURLWithPath: path), options: .atomic)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
            return handle
        } catch {
            throw .unreadableFile(file: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    deinit { try? handle?.close() }

    /// Appends one record as one line, in one write (rank 0 writes, every rank keeps it).
    func append(_ record: Record) throws(EvaluationError) {
        do {
            var line = try encoder.encode(record)
            line.append(UInt8(ascii: "\n"))
            try handle?.write(contentsOf: line)
        } catch {
            throw .unreadableFile(file: path, reason: "cannot write: \(error.localizedDescription)")
        }
        records.append(record)
    }
}
