import Foundation
import LoRACore

/// One question's scores, a line of the item file.
public struct MultipleChoiceRecord: Codable, Sendable, Equatable {
    public let id: Int
    public let subject: String?
    public let gold: Int
    /// Σ log p of each continuation (`" " + choice`) after the context.
    public let logLikelihoods: [Double]
    public let acc: Bool
    public let accNorm: Bool

    enum CodingKeys: String, CodingKey {
        case id, subject, gold, acc
        case logLikelihoods = "log_likelihoods"
        case accNorm = "acc_norm"
    }
}

/// acc and acc_norm as lm-evaluation-harness reports them: means over questions with the
/// standard error of the mean (sample standard deviation / √n).
public struct MultipleChoiceSummary: Codable, Sendable, Equatable {
    public let questions: Int
    public let acc: Double
    public let accStderr: Double
    public let accNorm: Double
    public let accNormStderr: Double
    /// MMLU: per subject (the overall figures are the micro-average over all questions).
    public let subjects: [String: MultipleChoiceSummary]?

    enum CodingKeys: String, CodingKey {
        case questions, acc, subjects
        case accStderr = "acc_stderr"
        case accNorm = "acc_norm"
        case accNormStderr = "acc_norm_stderr"
    }

    public init(records: [MultipleChoiceRecord], perSubject: Bool = true) {
        func mean(_ flags: [Bool]) -> (Double, Double) {
            let n = Double(flags.count)
            let p = flags.isEmpty ? 0 : Double(flags.filter { $0 }.count) / n
            return (p, flags.count > 1 ? (p * (1 - p) / (n - 1)).squareRoot() : 0)
        }
        questions = records.count
        (acc, accStderr) = mean(records.map(\.acc))
        (accNorm, accNormStderr) = mean(records.map(\.accNorm))
        let grouped = Dictionary(grouping: records.filter { $0.subject != nil }, by: { $0.subject! })
        subjects = perSubject && grouped.count > 1 ? grouped.mapValues { MultipleChoiceSummary(records: $0, perSubject: false) } : nil
    }
}

/// Scores every choice by its log-likelihood after the question (the context runs once and
/// the choices continue from its cache, side by side), and counts the questions whose best
/// choice is the right one.
public struct MultipleChoiceEvaluation: Sendable {
    public let model: LanguageModel

    public init(model: LanguageModel) {
        self.model = model
    }

    /// The context and continuation tokens of one request, as lm-evaluation-harness's
    /// `_encode_pair` makes them: trailing spaces of the context move to the continuation,
    /// the pair is encoded whole and the continuation is what follows the context's tokens.
    /// An empty context is conditioned on BOS (or EOS).
    public func encode(context: String, continuation: String) -> (context: [Int32], continuation: [Int32]) {
        // Python's rstrip(): trailing whitespace, counted in code points
        let scalars = context.unicodeScalars
        let kept = scalars.reversed().drop { $0.properties.isWhitespace }.count
        let trimmed = String(String.UnicodeScalarView(scalars.prefix(kept)))
        let moved = String(String.UnicodeScalarView(scalars.dropFirst(kept)))
        let tokenizer = model.tokenizer
        let whole = tokenizer.encode(trimmed + moved + continuation, parseSpecial: false, addBOS: nil)
        var contextIDs = trimmed.isEmpty ? [] : tokenizer.encode(trimmed, parseSpecial: false, addBOS: nil)
        let continuationIDs = Array(whole.dropFirst(contextIDs.count))
        if contextIDs.isEmpty, let prefix = tokenizer.bosTokenID ?? tokenizer.eosTokenID { contextIDs = [prefix] }
        return (contextIDs, continuationIDs)
    }

    /// The log-likelihood of each choice of `item`.
    public func logLikelihoods(_ item: MultipleChoiceItem) -> [Double] {
        let pairs = item.choices.map { encode(context: item.context, continuation: " " + $0) }
        // the harness encodes the context once per pair; a tokenizer merging across the
        // boundary could make them differ, and then each choice runs on its own
        if Set(pairs.map(\.context)).count == 1 {
            return model.model.score(context: pairs[0].context, continuations: pairs.map(\.continuation)).map(\.logLikelihood)
        }
        return pairs.map { model.model.score(context: $0.context, continuations: [$0.continuation])[0].logLikelihood }
    }

    /// Runs the items not yet in `itemsFile` (JSONL, resumable as refusal evaluation is),
    /// dealt out one a rank across the ranks of `group`.
    public func run(
        items: [MultipleChoiceItem], itemsFile: String, model identity: String, adapters: [String] = [], dataSHA256: String,
        shots: Int, group: ProcessGroup = .single, progress: ((WorkProgress) -> Void)? = nil,
        shouldStop: () -> Bool = { false }
    ) throws(EvaluationError) -> (summary: MultipleChoiceSummary, complete: Bool) {
        struct Identity: Codable, Equatable {
            let evaluation, model: String
            let adapters: [String]
            let data: String
            let shots: Int
        }
        let log = try ResultsLog<MultipleChoiceRecord>(
            path: itemsFile,
            header: Identity(
                evaluation: "mc", model: identity, adapters: adapters,
                data: dataSHA256, shots: shots), group: group)
        let done = Set(log.records.map(\.id))
        progress?(WorkProgress(completed: done.count, total: items.count, unit: "questions"))
        _ = try ItemRounds(group: group, perRank: 1).run(
            items.filter { !done.contains($0.id) }, shouldStop: shouldStop,
            compute: { mine in
                mine.map { item in
                    let scores = logLikelihoods(item)
                    // Python len: code points
                    let normalized = zip(scores, item.choices).map { $0 / Double(max($1.unicodeScalars.count, 1)) }
                    return MultipleChoiceRecord(
                        id: item.id, subject: item.subject, gold: item.gold, logLikelihoods: scores,
                        acc: Self.firstArgmax(scores) == item.gold, accNorm: Self.firstArgmax(normalized) == item.gold)
                }
            },
            record: { (records: [MultipleChoiceRecord]) throws(EvaluationError) in
                for record in records { try log.append(record) }
                progress?(WorkProgress(completed: log.records.count, total: items.count, unit: "questions"))
            })
        let ids = Set(items.map(\.id))
        let records = log.records.filter { ids.contains($0.id) }.sorted { $0.id < $1.id }
        return (MultipleChoiceSummary(records: records), records.count == items.count)
    }

    /// numpy's argmax: the first of equal maxima.
    static func firstArgmax(_ values: [Double]) -> Int {
        values.indices.reduce(0) { values[$1] > values[$0] ? $1 : $0 }
    }
}
