import LoRACore

/// What goes wrong in an evaluation, naming the file (and line) involved. Data problems are
/// found while loading, before any model time is spent.
public enum EvaluationError: Error, Equatable, CustomStringConvertible {
    case unreadableFile(file: String, reason: String)
    /// A record that cannot be used: a missing column or field, an answer out of range.
    case malformedData(file: String, line: Int, problem: String)
    case emptyDataset(file: String)
    /// A judge model that cannot answer the judge's question (its tokenizer lacks the answers).
    case unusableJudge(file: String, problem: String)
    /// A result file written by another evaluation than the one resuming into it.
    case mismatchedResults(file: String, problem: String)
    /// Evaluation options that cannot work together, named by the option (an
    /// `EvaluationOptions` property, e.g. `judge`).
    case invalidOption(option: String, problem: String)
    /// A config file (an experiment's) with a missing key or a value of the wrong type.
    case malformedConfig(file: String, key: String, problem: String)
    case model(LoRAError)

    public var description: String {
        switch self {
        case .unreadableFile(let file, let reason): "\(file): cannot read: \(reason)"
        case .malformedData(let file, let line, let problem): "\(file):\(line): \(problem)"
        case .emptyDataset(let file): "\(file): no records"
        case .unusableJudge(let file, let problem): "\(file): cannot serve as a judge: \(problem)"
        case .mismatchedResults(let file, let problem): "\(file): \(problem)"
        case .invalidOption(let option, let problem): "\(option): \(problem)"
        case .malformedConfig(let file, let key, let problem): key.isEmpty ? "\(file): \(problem)" : "\(file): \(key): \(problem)"
        case .model(let error): "\(error)"
        }
    }
}
