import Foundation

/// A token's log-probability where it stands, and the most likely tokens there: what
/// OpenAI's `logprobs` report and what lm-evaluation-harness sums and compares.
public struct TokenLogProbability: Sendable, Equatable {
    public struct Alternative: Sendable, Equatable {
        public let token: Int32
        public let logprob: Float
    }

    public let token: Int32
    /// log p(token | everything before it), natural log, from the model's own distribution
    /// (before temperature or any filter); nil for a prompt's first token.
    public let logprob: Float?
    /// The most likely tokens at this position, most likely first (ties by token id).
    public let top: [Alternative]

    public init(token: Int32, logprob: Float?, top: [Alternative]) {
        self.token = token
        self.logprob = logprob
        self.top = top
    }

    /// From a position's logits [vocab]: the token's entry and the `top` largest.
    public init(of token: Int32, logits: [Float], top count: Int) {
        // cannot throw: the shape holds exactly the values
        self = Self.entries(predicting: [token], logits: try! Tensor(shape: [1, logits.count], values: logits), top: count)[0]
    }

    /// The entries of the tokens each row of logits [rows, vocab] predicts. Every entry is
    /// z − logsumexp(z) with the kernels' logsumexp, so a token's log-probability is the
    /// bits `Kernels.logProbabilities` (scoring, perplexity) gives, and a token that is the
    /// most likely one has exactly the top entry's value (the harness's greedy test compares
    /// them for equality).
    static func entries(predicting tokens: [Int32], logits: Tensor, top count: Int) -> [TokenLogProbability] {
        let vocab = logits.shape[1]
        let logSums = Kernels.logSumExp(logits)
        let scalars = logits.scalars
        return tokens.enumerated().map { row, token in
            let z = scalars[row * vocab..<(row + 1) * vocab]
            var best: [Alternative] = []
            if count > 0 {
                for (offset, value) in z.enumerated() where best.count < count || value > best.last!.logprob {
                    let at = best.firstIndex { value > $0.logprob } ?? best.count
                    best.insert(Alternative(token: Int32(offset), logprob: value), at: at)
                    if best.count > count { best.removeLast() }
                }
            }
            return TokenLogProbability(
                token: token, logprob: z[z.startIndex + Int(token)] - logSums[row],
                top: best.map { Alternative(token: $0.token, logprob: $0.logprob - logSums[row]) })
        }
    }
}
