/// How likely a model finds a continuation of a context: what multiple-choice evaluation
/// compares between choices.
public struct ContinuationScore: Sendable, Equatable {
    /// Σ log p(token | everything before it) over the continuation's tokens (natural log).
    public let logLikelihood: Double
    /// Whether every token is the model's most likely one (greedy decoding would produce it).
    public let isGreedy: Bool
    public let tokenCount: Int
}

extension LlamaModel {
    /// Scores each continuation after `context`. The context runs once; the continuations
    /// then run side by side, each from its own copy of the context's cache. A context too
    /// long for the model loses its oldest tokens (as lm-evaluation-harness truncates).
    public func score(context: [Int32], continuations: [[Int32]]) -> [ContinuationScore] {
        precondition(
            !context.isEmpty && continuations.allSatisfy { !$0.isEmpty },
            "LlamaModel.score: an empty context or continuation (condition an empty context on BOS)")
        let longest = continuations.map(\.count).max() ?? 0
        precondition(
            longest < config.maxPositionEmbeddings, "LlamaModel.score: a continuation of \(longest) tokens fills the whole context")
        let kept = Array(context.suffix(config.maxPositionEmbeddings - longest))
        let cache = makeCache(capacity: kept.count + longest)
        var last: Tensor?
        for start in stride(from: 0, to: kept.count, by: Self.headRows) {
            let chunk = Array(kept[start..<min(start + Self.headRows, kept.count)])
            last = forward(chunk, cache: cache, logits: start + chunk.count == kept.count ? .last : .none)
        }
        // a continuation's first token is predicted by the context's last row, each later one
        // by the row of the token before it: its last token needs no forward pass of its own
        let fed = continuations.filter { $0.count > 1 }.map { Array($0.dropLast()) }
        let rows =
            fed.isEmpty
            ? nil
            : forward(
                fed.flatMap { $0 }, sequences: fed.map(\.count), caches: fed.map { _ in cache.copy(capacity: cache.count + longest) },
                logits: .all)
        var row = 0
        return continuations.map { continuation in
            var logits = last!
            var logLikelihood = 0.0
            var isGreedy = true
            for (index, token) in continuation.enumerated() {
                if index > 0 {
                    logits = rows!.rows(row..<row + 1)
                    row += 1
                }
                logLikelihood += Double(Kernels.logProbabilities(logits: logits, targets: [token])[0])
                isGreedy = isGreedy && Sampler.argmax(logits.scalars) == Int(token)
            }
            return ContinuationScore(logLikelihood: logLikelihood, isGreedy: isGreedy, tokenCount: continuation.count)
        }
    }

    /// log p(tokens[i] | tokens[..<i]) for i in 1..<count, from position 0: the terms of a
    /// perplexity. Runs through a cache `headRows` tokens at a time, so the logits alive
    /// stay small for a long window.
    public func tokenLogProbabilities(_ tokens: [Int32]) -> [Float] {
        precondition(
            tokens.count <= config.maxPositionEmbeddings,
            "LlamaModel.tokenLogProbabilities: \(tokens.count) tokens for a context of \(config.maxPositionEmbeddings)")
        guard tokens.count > 1 else { return [] }
        let cache = makeCache(capacity: tokens.count)
        var result: [Float] = []
        result.reserveCapacity(tokens.count - 1)
        for start in stride(from: 0, to: tokens.count - 1, by: Self.headRows) {
            let end = min(start + Self.headRows, tokens.count - 1)
            let logits = forward(Array(tokens[start..<end]), cache: cache, logits: .all)!
            result += Kernels.logProbabilities(logits: logits, targets: Array(tokens[start + 1...end]))
        }
        return result
    }
}
