import Foundation

/// One prompt of a refusal or over-refusal set.
public struct EvaluationPrompt: Sendable, Equatable, Codable {
    /// Its position in the file (0-based): results are keyed by it.
    public let id: Int
    public let text: String
    public let category: String?

    public init(id: Int, text: String, category: String? = nil) {
        self.id = id
        self.text = text
        self.category = category
    }
}

/// The prompts of a file in one of the public shapes:
/// - CSV with a `goal` column (AdvBench's `harmful_behaviors.csv`), or a `prompt` column,
///   and an optional `category` column (XSTest's `type` is taken as the category too);
/// - JSONL with a `prompt` field (or `goal`) and an optional `category`;
/// - JSON object mapping each category to a list of prompt strings (RefusalBench's
///   `benchfile.json`).
public enum PromptSet {
    public static func load(_ path: String) throws(EvaluationError) -> [EvaluationPrompt] {
        let prompts: [EvaluationPrompt]
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "csv": prompts = try csv(path)
        case "jsonl": prompts = try jsonLines(path)
        case "json": prompts = try categoryObject(path)
        default: throw .unreadableFile(file: path, reason: "unknown prompt-set format: give a .csv, .jsonl or .json file")
        }
        guard !prompts.isEmpty else { throw .emptyDataset(file: path) }
        return prompts
    }

    static func csv(_ path: String) throws(EvaluationError) -> [EvaluationPrompt] {
        let table = try CSVTable(text: try TextFile.read(path), file: path).named(file: path)
        guard let column = table.names.firstIndex(of: "goal") ?? table.names.firstIndex(of: "prompt") else {
            throw .malformedData(
                file: path, line: table.header.line,
                problem: "no `goal` or `prompt` column in the header (\(table.header.fields.joined(separator: ",")))")
        }
        var prompts: [EvaluationPrompt] = []
        for row in table.rows {
            let fields = try table.fields(of: row)
            prompts.append(
                try prompt(fields[column], category: table.categoryColumn.map { fields[$0] }, id: prompts.count, file: path, line: row.line)
            )
        }
        return prompts
    }

    static func jsonLines(_ path: String) throws(EvaluationError) -> [EvaluationPrompt] {
        var prompts: [EvaluationPrompt] = []
        for (line, object) in try TextFile.jsonLines(path) {
            guard let text = (object["prompt"] ?? object["goal"]) as? String else {
                throw .malformedData(file: path, line: line, problem: "no `prompt` string field")
            }
            if let category = object["category"], !(category is String) {
                throw .malformedData(file: path, line: line, problem: "`category` is not a string")
            }
            prompts.append(try prompt(text, category: object["category"] as? String, id: prompts.count, file: path, line: line))
        }
        return prompts
    }

    static func categoryObject(_ path: String) throws(EvaluationError) -> [EvaluationPrompt] {
        let text = try TextFile.read(path)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw .malformedData(file: path, line: 1, problem: "not a JSON object mapping categories to lists of prompts")
        }
        var prompts: [EvaluationPrompt] = []
        // categories in sorted order: JSON objects have none, and ids must not depend on the parser
        for category in object.keys.sorted() {
            guard let list = object[category] as? [String] else {
                throw .malformedData(file: path, line: 1, problem: "category `\(category)` is not a list of strings")
            }
            for text in list { prompts.append(try prompt(text, category: category, id: prompts.count, file: path, line: 1)) }
        }
        return prompts
    }

    private static func prompt(_ text: String, category: String?, id: Int, file: String, line: Int) throws(EvaluationError)
        -> EvaluationPrompt
    {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .malformedData(file: file, line: line, problem: "an empty prompt")
        }
        let category = category?.trimmingCharacters(in: .whitespaces)
        return EvaluationPrompt(id: id, text: text, category: category?.isEmpty == false ? category : nil)
    }
}
