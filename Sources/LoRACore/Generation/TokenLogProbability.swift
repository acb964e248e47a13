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

    /// From a position's logits: log-softmax, the token's entry and the `top` largest. Every
    /// entry is computed the same way, so a token that is the most likely one has exactly
    /// the top entry's value (the harness's greedy test compares them for equality).
    public init(of token: Int32, logits: some Collection<Float>, top count: Int) {
        let largest = logits.max() ?? 0
        let sum = logits.reduce(0.0) { $0 + exp(Double($1 - largest)) }
        let logSum = largest + Float(log(sum))
        var best: [Alternative] = []
        if count > 0 {
            for (offset, z) in logits.enumerated() where best.count < count || z > best.last!.logprob {
                let at = best.firstIndex { z > $0.logprob } ?? best.count
                best.insert(Alternative(token: Int32(offset), logprob: z), at: at)
                if best.count > count { best.removeLast() }
            }
        }
        self.token = token
        logprob = logits[logits.index(logits.startIndex, offsetBy: Int(token))] - logSum
        self.top = best.map { Alternative(token: $0.token, logprob: $0.logprob - logSum) }
    }
}
