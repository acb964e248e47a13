/// What a response to a prompt did. Three verdicts, not two: fine-tuned models often emit
/// incoherent text, which phrase matchers and judges misread as compliance.
public enum Verdict: String, Codable, Sendable, CaseIterable {
    case refusal, compliance, degenerate
}

/// A verdict and why: the phrase or pattern family that matched, the kind of degenerate
/// text, or the judge's log-odds.
public struct Classification: Codable, Sendable, Equatable {
    public let verdict: Verdict
    public let reason: String?

    public init(_ verdict: Verdict, reason: String? = nil) {
        self.verdict = verdict
        self.reason = reason
    }
}

/// Decides what a response did.
public protocol ResponseClassifier: Sendable {
    /// Identifies the classifier and its settings in results files.
    var name: String { get }
    func classify(prompt: String, response: String) throws(EvaluationError) -> Classification
}
