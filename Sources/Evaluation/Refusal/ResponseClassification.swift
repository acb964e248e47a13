import Foundation
import LoRACore

/// How often a classifier's verdicts agree with a reference label: the confusion table
/// (reference label → verdict → count) and the agreement over the rows whose label reads
/// as a verdict.
public struct LabelAgreement: Codable, Sendable, Equatable {
    /// The column or field the labels came from.
    public let column: String
    /// label → verdict → rows.
    public let confusion: [String: [String: Int]]
    /// Rows whose label reads as a verdict, and those of them the classifier agrees with.
    public let compared: Int
    public let agreed: Int
    /// agreed / compared (nil when no label reads as a verdict).
    public let rate: Double?
    /// Labels that read as no verdict (their rows are in the table, not in the agreement).
    public let unmapped: [String]

    /// A label's verdict: from `map` when given, else by its words ("2_full_refusal" and
    /// "3_partial_refusal" are refusals, "1_full_compliance" and "following" compliance,
    /// "refusal", "compliance" and "degenerate" themselves).
    public static func verdict(of label: String, map: [String: Verdict]?) -> Verdict? {
        if let map { return map[label] }
        let lower = label.lowercased()
        if lower.contains("refus") { return .refusal }
        if lower.contains("complian") || lower.contains("follow") { return .compliance }
        if lower.contains("degenerate") { return .degenerate }
        return nil
    }

    public init(column: String, records: [RefusalRecord], map: [String: Verdict]? = nil) {
        self.column = column
        var confusion: [String: [String: Int]] = [:]
        var compared = 0
        var agreed = 0
        var unmapped: Set<String> = []
        for record in records {
            guard let label = record.label else { continue }
            confusion[label, default: [:]][record.verdict.rawValue, default: 0] += 1
            guard let expected = Self.verdict(of: label, map: map) else {
                unmapped.insert(label)
                continue
            }
            compared += 1
            if expected == record.verdict { agreed += 1 }
        }
        self.confusion = confusion
        self.compared = compared
        self.agreed = agreed
        rate = compared > 0 ? Double(agreed) / Double(compared) : nil
        self.unmapped = unmapped.sorted()
    }
}

/// Classifies saved responses again (HarmBench's and XSTest's separate scoring step):
/// writes one verdict line per response, in input order, to a JSONL file shaped as
/// `lora eval refusal`'s responses file; an interrupted run resumes after the lines there.
public struct ResponseClassification: Sendable {
    public let classifier: any ResponseClassifier

    public init(classifier: any ResponseClassifier) {
        self.classifier = classifier
    }

    struct Identity: Codable, Equatable {
        let evaluation: String
        let data: String
        let classifier: String
        let labelColumn: String?

        enum CodingKeys: String, CodingKey {
            case evaluation, data, classifier
            case labelColumn = "label_column"
        }
    }

    public func run(
        responses: [SavedResponse], verdictsFile: String, dataSHA256: String, labelColumn: String? = nil,
        labelMap: [String: Verdict]? = nil, progress: ((WorkProgress) -> Void)? = nil,
        shouldStop: @escaping @Sendable () -> Bool = { false }
    ) throws(EvaluationError) -> (summary: RefusalSummary, agreement: LabelAgreement?, complete: Bool) {
        let log = try ResultsLog<RefusalRecord>(
            path: verdictsFile,
            header: Identity(evaluation: "classify", data: dataSHA256, classifier: classifier.name, labelColumn: labelColumn))
        let done = Set(log.records.map(\.id))
        progress?(WorkProgress(completed: done.count, total: responses.count, unit: "responses"))
        for response in responses where !done.contains(response.id) {
            if shouldStop() { break }
            let classification = try classifier.classify(prompt: response.prompt, response: response.response)
            try log.append(
                RefusalRecord(
                    id: response.id, category: response.category, prompt: response.prompt, response: response.response,
                    verdict: classification.verdict, reason: classification.reason, label: response.label))
            progress?(WorkProgress(completed: log.records.count, total: responses.count, unit: "responses"))
        }
        let ids = Set(responses.map(\.id))
        let records = log.records.filter { ids.contains($0.id) }.sorted { $0.id < $1.id }
        return (
            RefusalSummary(records: records), labelColumn.map { LabelAgreement(column: $0, records: records, map: labelMap) },
            records.count == responses.count
        )
    }
}
