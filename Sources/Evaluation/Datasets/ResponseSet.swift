import Foundation

/// A saved response to a prompt, to be classified again.
public struct SavedResponse: Sendable, Equatable {
    /// Its position in the file (0-based): verdicts are keyed by it.
    public let id: Int
    public let prompt: String
    public let response: String
    public let category: String?
    /// The reference label (a human's or another classifier's) from the column the user named.
    public let label: String?

    public init(id: Int, prompt: String, response: String, category: String? = nil, label: String? = nil) {
        self.id = id
        self.prompt = prompt
        self.response = response
        self.category = category
        self.label = label
    }
}

/// Prompt and response pairs in the shapes the public tools save them:
/// - CSV with a `prompt`, `goal` or `behavior` column, a `response`, `completion` or
///   `generation` column, and an optional `category` (or `type`) column: XSTest's
///   `model_completions/*.csv` and its labelled copies;
/// - JSONL with the same fields, which includes the responses file of `lora eval refusal`
///   (its header line is skipped);
/// - JSON: HarmBench's completions file (behavior id → list of `{test_case, generation}`;
///   the behavior id becomes the category, the test case the prompt), or a list of objects
///   with the fields above.
///
/// `labelColumn` names a column (CSV) or field (JSON) holding a reference label; every row
/// must have it.
public enum ResponseSet {
    static let promptNames = ["prompt", "goal", "behavior"]
    static let responseNames = ["response", "completion", "generation"]

    public static func load(_ path: String, labelColumn: String? = nil) throws(EvaluationError) -> [SavedResponse] {
        let responses: [SavedResponse]
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "csv": responses = try csv(path, labelColumn: labelColumn)
        case "jsonl":
            responses = try TextFile.jsonLines(path).filter { $0.object["header"] == nil }.enumerated().map {
                (index, line) throws(EvaluationError) in
                try response(line.object, id: index, file: path, line: line.line, labelColumn: labelColumn)
            }
        case "json": responses = try json(path, labelColumn: labelColumn)
        default: throw .unreadableFile(file: path, reason: "unknown responses format: give a .csv, .jsonl or .json file")
        }
        guard !responses.isEmpty else { throw .emptyDataset(file: path) }
        return responses
    }

    static func csv(_ path: String, labelColumn: String?) throws(EvaluationError) -> [SavedResponse] {
        let table = try CSVTable(text: try TextFile.read(path), file: path).named(file: path)
        func column(_ candidates: [String], what: String) throws(EvaluationError) -> Int {
            guard let index = candidates.lazy.compactMap({ table.names.firstIndex(of: $0) }).first else {
                let listed = candidates.map { "`\($0)`" }.joined(separator: ", ")
                throw .malformedData(
                    file: path, line: table.header.line,
                    problem: "no \(what) column (\(listed)) in the header (\(table.header.fields.joined(separator: ",")))")
            }
            return index
        }
        let promptColumn = try column(promptNames, what: "prompt")
        let responseColumn = try column(responseNames, what: "response")
        let labelIndex = try labelColumn.map { (name) throws(EvaluationError) in try column([name.lowercased()], what: "label") }
        var responses: [SavedResponse] = []
        for row in table.rows {
            let fields = try table.fields(of: row)
            let category = table.categoryColumn.map { fields[$0].trimmingCharacters(in: .whitespaces) }
            responses.append(
                try validated(
                    SavedResponse(
                        id: responses.count, prompt: fields[promptColumn], response: fields[responseColumn],
                        category: category?.isEmpty == false ? category : nil, label: labelIndex.map { fields[$0] }),
                    file: path, line: row.line, labelColumn: labelColumn))
        }
        return responses
    }

    static func json(_ path: String, labelColumn: String?) throws(EvaluationError) -> [SavedResponse] {
        let object = try? JSONSerialization.jsonObject(with: Data(try TextFile.read(path).utf8))
        if let list = object as? [Any] {
            return try list.enumerated().map { (index, item) throws(EvaluationError) in
                guard let fields = item as? [String: Any] else {
                    throw .malformedData(file: path, line: 1, problem: "item \(index) is not an object")
                }
                return try response(fields, id: index, file: path, line: 1, labelColumn: labelColumn)
            }
        }
        guard let behaviors = object as? [String: Any] else {
            throw .malformedData(
                file: path, line: 1, problem: "neither a list of responses nor HarmBench's behavior id → completions object")
        }
        var responses: [SavedResponse] = []
        // behaviors in sorted order: JSON objects have none, and ids must not depend on the parser
        for behavior in behaviors.keys.sorted() {
            guard let completions = behaviors[behavior] as? [[String: Any]] else {
                throw .malformedData(file: path, line: 1, problem: "behavior `\(behavior)` is not a list of completions")
            }
            for completion in completions {
                var fields = completion
                fields["prompt"] = completion["test_case"] ?? completion["prompt"]
                fields["category"] = fields["category"] ?? behavior
                responses.append(try response(fields, id: responses.count, file: path, line: 1, labelColumn: labelColumn))
            }
        }
        return responses
    }

    private static func response(_ fields: [String: Any], id: Int, file: String, line: Int, labelColumn: String?) throws(EvaluationError)
        -> SavedResponse
    {
        func text(_ names: [String], what: String) throws(EvaluationError) -> String {
            guard let value = names.lazy.compactMap({ fields[$0] as? String }).first else {
                throw .malformedData(file: file, line: line, problem: "no \(what) string field (\(names.joined(separator: ", ")))")
            }
            return value
        }
        if let category = fields["category"], !(category is String) {
            throw .malformedData(file: file, line: line, problem: "`category` is not a string")
        }
        var label: String?
        if let labelColumn {
            switch fields[labelColumn] {
            case let string as String: label = string
            case let number as NSNumber: label = number.stringValue
            default: throw .malformedData(file: file, line: line, problem: "no `\(labelColumn)` label (a string or a number)")
            }
        }
        return try validated(
            SavedResponse(
                id: id, prompt: try text(promptNames, what: "prompt"), response: try text(responseNames, what: "response"),
                category: fields["category"] as? String, label: label),
            file: file, line: line, labelColumn: labelColumn)
    }

    private static func validated(_ response: SavedResponse, file: String, line: Int, labelColumn: String?) throws(EvaluationError)
        -> SavedResponse
    {
        guard !response.prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .malformedData(file: file, line: line, problem: "an empty prompt")
        }
        if let labelColumn, response.label?.trimmingCharacters(in: .whitespaces).isEmpty ?? true {
            throw .malformedData(file: file, line: line, problem: "an empty `\(labelColumn)` label")
        }
        return response
    }
}
