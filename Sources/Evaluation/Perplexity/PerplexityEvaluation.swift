import Foundation
import LoRACore

/// Perplexity of a text, and the log-probability of every token that went into it.
public struct PerplexityResult: Codable, Sendable, Equatable {
    public let tokens: Int
    /// Tokens predicted (all but the first).
    public let scoredTokens: Int
    public let window: Int
    public let stride: Int
    /// exp(−mean log p) over the scored tokens.
    public let perplexity: Double
    public let meanLogProbability: Double

    enum CodingKeys: String, CodingKey {
        case tokens, window, stride, perplexity
        case scoredTokens = "scored_tokens"
        case meanLogProbability = "mean_log_probability"
    }
}

/// Perplexity with a sliding window, the usual definition for a model of bounded context
/// (Hugging Face's "Perplexity of fixed-length models"): windows of `window` tokens start
/// every `stride` tokens, and each scores only the tokens the previous window did not, with
/// up to `window − stride` tokens of context before them. `stride == window` is the
/// disjoint-chunks estimate; smaller strides give each token more context.
public struct PerplexityEvaluation: Sendable {
    public let model: LanguageModel
    public let window: Int
    public let stride: Int

    public init(model: LanguageModel, window: Int? = nil, stride: Int? = nil) {
        self.model = model
        self.window = max(2, min(window ?? model.model.config.maxPositionEmbeddings, model.model.config.maxPositionEmbeddings))
        self.stride = max(1, min(stride ?? self.window / 2, self.window))
    }

    /// The result and each token's log-probability (`logProbabilities[i]` predicts token
    /// i + 1 of `tokens`).
    public func run(tokens: [Int32], group: ProcessGroup = .single, progress: ((WorkProgress) -> Void)? = nil) throws(EvaluationError)
        -> (result: PerplexityResult, logProbabilities: [Float])
    {
        // the windows, each with the first position it scores (the ones before were scored by
        // the previous window): a fixed list, dealt out across the ranks of `group`
        var windows: [(start: Int, end: Int, firstScored: Int)] = []
        var scoredUpTo = 1 // token 0 has nothing to be predicted from
        var start = 0
        while scoredUpTo < tokens.count {
            let end = min(start + window, tokens.count)
            windows.append((start, end, scoredUpTo))
            scoredUpTo = end
            start += stride
        }
        progress?(WorkProgress(completed: 0, total: tokens.count, unit: "tokens"))
        var mine: [[Float]] = []
        for index in group.share(of: windows.count) {
            let (start, end, firstScored) = windows[index]
            let windowLogProbabilities = model.model.tokenLogProbabilities(Array(tokens[start..<end]))
            // entry j predicts token start + j + 1: keep those not scored yet
            mine.append(Array(windowLogProbabilities[(firstScored - start - 1)...]))
            progress?(WorkProgress(completed: min(end * group.size, tokens.count), total: tokens.count, unit: "tokens"))
        }
        let logProbabilities: [Float]
        do { logProbabilities = try group.gatherItems(mine, count: windows.count).flatMap { $0 } } catch { throw .model(error) }
        // a fixed-order double sum: the same figure with any thread count
        let total = logProbabilities.reduce(0.0) { $0 + Double($1) }
        let mean = logProbabilities.isEmpty ? 0 : total / Double(logProbabilities.count)
        return (
            PerplexityResult(
                tokens: tokens.count, scoredTokens: logProbabilities.count, window: window, stride: stride,
                perplexity: Foundation.exp(-mean), meanLogProbability: mean), logProbabilities
        )
    }
}
