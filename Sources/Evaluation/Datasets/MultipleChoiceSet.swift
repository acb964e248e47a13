import Foundation

/// One multiple-choice question: the text the model reads, the choices it could continue
/// with, and the right one.
public struct MultipleChoiceItem: Sendable, Equatable, Codable {
    public let id: Int
    /// Everything before the answer, few-shot examples included.
    public let context: String
    /// The choices as scored: each continuation is `" " + choice` (lm-evaluation-harness's
    /// target delimiter); acc_norm divides by the choice's length in characters.
    public let choices: [String]
    public let gold: Int
    /// MMLU's subject, for per-subject results.
    public let subject: String?

    public init(id: Int, context: String, choices: [String], gold: Int, subject: String? = nil) {
        self.id = id
        self.context = context
        self.choices = choices
        self.gold = gold
        self.subject = subject
    }
}

/// Multiple-choice sets in their original shapes:
/// - MMLU CSV (`question, A, B, C, D, answer letter`, no header), one subject per file
///   (`<subject>_test.csv`), or a folder of them; k-shot examples come from the subject's
///   dev file (`../dev/<subject>_dev.csv` or beside it), the first k in order;
/// - HellaSwag JSONL (`activity_label`, `ctx_a`, `ctx_b`, `endings`, `label`), with the
///   harness's preprocessing;
/// - generic JSONL: `question`, `choices`, `answer` (0-based index); the context is the
///   question as given.
public enum MultipleChoiceSet {
    public enum Format: String, Sendable { case mmlu, hellaswag, generic }

    /// The items of `path` and the format found. `shots` nil takes the format's default
    /// (5 for MMLU as the paper reports it, 0 otherwise).
    public static func load(_ path: String, shots: Int? = nil) throws(EvaluationError) -> (items: [MultipleChoiceItem], format: Format) {
        let result: ([MultipleChoiceItem], Format)
        if TextFile.isFolder(path) {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix("_test.csv") }.sorted()
            guard !files.isEmpty else { throw .emptyDataset(file: path) }
            var items: [MultipleChoiceItem] = []
            for file in files {
                for item in try mmlu("\(path)/\(file)", shots: shots ?? 5) {
                    items.append(
                        MultipleChoiceItem(
                            id: items.count, context: item.context, choices: item.choices, gold: item.gold,
                            subject: item.subject))
                }
            }
            result = (items, .mmlu)
        } else {
            switch URL(fileURLWithPath: path).pathExtension.lowercased() {
            case "csv": result = (try mmlu(path, shots: shots ?? 5), .mmlu)
            case "jsonl":
                let records = try TextFile.jsonLines(path)
                if records.first?.object["endings"] != nil {
                    result = (try hellaSwag(path, records, shots: shots ?? 0), .hellaswag)
                } else {
                    result = (try generic(path, records, shots: shots ?? 0), .generic)
                }
            default:
                throw .unreadableFile(
                    file: path, reason: "unknown multiple-choice format: give MMLU .csv files, or HellaSwag or generic .jsonl")
            }
        }
        guard !result.0.isEmpty else { throw .emptyDataset(file: path) }
        return result
    }

    // MARK: MMLU

    static let letters = ["A", "B", "C", "D"]

    static func mmlu(_ path: String, shots: Int) throws(EvaluationError) -> [MultipleChoiceItem] {
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let subjectKey = ["_test", "_dev", "_val"].first(where: name.hasSuffix).map { String(name.dropLast($0.count)) } ?? name
        let subject = subjectKey.replacingOccurrences(of: "_", with: " ")
        let questions = try mmluRows(path)
        var examples = ""
        if shots > 0 {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
            let candidates = [
                folder.deletingLastPathComponent().appendingPathComponent("dev/\(subjectKey)_dev.csv").path,
                folder.appendingPathComponent("\(subjectKey)_dev.csv").path,
            ]
            guard let devPath = candidates.first(where: FileManager.default.fileExists) else {
                throw .unreadableFile(
                    file: candidates[0], reason: "no dev file for \(shots)-shot examples of \(subject) (0 shots need none)")
            }
            let dev = try mmluRows(devPath)
            guard dev.count >= shots else {
                throw .malformedData(file: devPath, line: dev.count, problem: "\(dev.count) dev examples for \(shots) shots")
            }
            examples = dev.prefix(shots).map { block($0.question, $0.options) + " " + letters[$0.answer] + "\n\n" }.joined()
        }
        let description = "The following are multiple choice questions (with answers) about \(subject).\n\n"
        return questions.enumerated().map { index, row in
            MultipleChoiceItem(
                id: index, context: description + examples + block(row.question, row.options), choices: letters,
                gold: row.answer, subject: subjectKey)
        }
    }

    static func block(_ question: String, _ options: [String]) -> String {
        question.trimmingCharacters(in: .whitespacesAndNewlines) + "\n"
            + zip(letters, options).map { "\($0). \($1)\n" }.joined() + "Answer:"
    }

    static func mmluRows(_ path: String) throws(EvaluationError) -> [(question: String, options: [String], answer: Int)] {
        try CSVTable(text: try TextFile.read(path), file: path).records.map { record throws(EvaluationError) in
            guard record.fields.count == 6 else {
                throw .malformedData(
                    file: path, line: record.line, problem: "\(record.fields.count) fields: MMLU rows are question, A, B, C, D, answer")
            }
            let letter = record.fields[5].trimmingCharacters(in: .whitespaces)
            guard let answer = letters.firstIndex(of: letter) else {
                throw .malformedData(file: path, line: record.line, problem: "answer `\(letter)` is not one of A, B, C, D")
            }
            return (record.fields[0], Array(record.fields[1...4]), answer)
        }
    }

    // MARK: HellaSwag

    static func hellaSwag(_ path: String, _ records: [(line: Int, object: [String: Any])], shots: Int) throws(EvaluationError)
        -> [MultipleChoiceItem]
    {
        let rows = try records.map { line, object throws(EvaluationError) -> (String, [String], Int) in
            guard let activity = object["activity_label"] as? String, let a = object["ctx_a"] as? String,
                let b = object["ctx_b"] as? String,
                let endings = object["endings"] as? [String], endings.count >= 2
            else {
                throw .malformedData(
                    file: path, line: line,
                    problem: "HellaSwag records need `activity_label`, `ctx_a`, `ctx_b` strings and an `endings` list")
            }
            let label = (object["label"] as? String).flatMap { Int($0) } ?? object["label"] as? Int
            guard let label, endings.indices.contains(label) else {
                throw .malformedData(file: path, line: line, problem: "`label` is not an index of the \(endings.count) endings")
            }
            return (preprocess(activity + ": " + a + " " + capitalized(b)), endings.map(preprocess), label)
        }
        return try withShots(rows, shots: shots, file: path)
    }

    /// The harness's HellaSwag cleanup: " [title]" becomes ". ", other [tags] go, double spaces close.
    static func preprocess(_ text: String) -> String {
        var text = text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: " [title]", with: ". ")
        text = text.replacingOccurrences(of: "\\[.*?\\]", with: "", options: .regularExpression)
        return text.replacingOccurrences(of: "  ", with: " ")
    }

    /// Python's `str.capitalize()`: the first character upper case, the rest lower.
    static func capitalized(_ text: String) -> String {
        guard let first = text.first else { return text }
        return String(first).uppercased() + text.dropFirst().lowercased()
    }

    // MARK: Generic

    static func generic(_ path: String, _ records: [(line: Int, object: [String: Any])], shots: Int) throws(EvaluationError)
        -> [MultipleChoiceItem]
    {
        let rows = try records.map { line, object throws(EvaluationError) -> (String, [String], Int) in
            guard let question = object["question"] as? String, let choices = object["choices"] as? [String], choices.count >= 2 else {
                throw .malformedData(
                    file: path, line: line, problem: "records need a `question` string and a `choices` list of at least two strings")
            }
            guard let answer = object["answer"] as? Int, choices.indices.contains(answer) else {
                throw .malformedData(file: path, line: line, problem: "`answer` is not a 0-based index of the \(choices.count) choices")
            }
            return (question, choices, answer)
        }
        return try withShots(rows, shots: shots, file: path)
    }

    /// k-shot for JSONL sets: the first k records, solved, before each later question (and
    /// not evaluated themselves).
    static func withShots(_ rows: [(String, [String], Int)], shots: Int, file: String) throws(EvaluationError) -> [MultipleChoiceItem] {
        guard shots < rows.count else {
            throw .malformedData(file: file, line: rows.count, problem: "\(rows.count) records for \(shots) shots and a question")
        }
        let examples = rows.prefix(shots).map { $0.0 + " " + $0.1[$0.2] + "\n\n" }.joined()
        return rows.dropFirst(shots).enumerated().map { index, row in
            MultipleChoiceItem(id: index, context: examples + row.0, choices: row.1, gold: row.2, subject: nil)
        }
    }
}
