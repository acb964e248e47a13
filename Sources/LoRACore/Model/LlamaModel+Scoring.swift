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
    /// Scores each continuation after `context`. The context's whole `promptChunk`s run
    /// once; each continuation then runs from its own copy of that cache, side by side, with
    /// the context's last partial chunk in front of it. Every position is computed in the
    /// chunk a whole sequence would be cut into, so a continuation scores exactly as the
    /// concatenated sequence does through generation's prefill or a server's echo, bit for
    /// bit. A context too long for the model loses its oldest tokens (as
    /// lm-evaluation-harness truncates).
    public func score(context: [Int32], continuations: [[Int32]]) -> [ContinuationScore] {
        precondition(
            !context.isEmpty && continuations.allSatisfy { !$0.isEmpty },
            "LlamaModel.score: an empty context or continuation (condition an empty context on BOS)")
        let longest = continuations.map(\.count).max() ?? 0
        precondition(
            longest < config.maxPositionEmbeddings, "LlamaModel.score: a continuation of \(longest) tokens fills the whole context")
        let kept = Array(context.suffix(config.maxPositionEmbeddings - longest))
        let shared = kept.count / Self.promptChunk * Self.promptChunk
        let cache = makeCache(capacity: kept.count + longest)
        // the logits after the shared part: they predict a continuation's first token when
        // the context ends on a chunk boundary
        var afterShared: Tensor?
        for start in stride(from: 0, to: shared, by: Self.promptChunk) {
            afterShared = forward(
                Array(kept[start..<start + Self.promptChunk]), cache: cache, logits: start + Self.promptChunk == shared ? .last : .none)
        }
        let lead = kept.count - shared
        let tails = continuations.map { Array(kept[shared...]) + $0 }
        let caches = tails.map { _ in cache.copy(capacity: kept.count + longest) }
        var logLikelihoods = [Double](repeating: 0, count: tails.count)
        var greedy = [Bool](repeating: true, count: tails.count)
        func add(_ logits: Tensor, predicting position: Int, of tail: Int) {
            let token = tails[tail][position]
            logLikelihoods[tail] += Double(Kernels.logProbabilities(logits: logits, targets: [token])[0])
            greedy[tail] = greedy[tail] && Sampler.argmax(logits.scalars) == Int(token)
        }
        if lead == 0 {
            for tail in tails.indices { add(afterShared!, predicting: 0, of: tail) }
        }
        for offset in stride(from: 0, to: tails.map(\.count).max()!, by: Self.promptChunk) {
            let active = tails.indices.filter { tails[$0].count > offset }
            let pieces = active.map { tails[$0][offset..<min(offset + Self.promptChunk, tails[$0].count)] }
            let logits = forward(pieces.flatMap { $0 }, sequences: pieces.map(\.count), caches: active.map { caches[$0] }, logits: .all)!
            var row = 0
            for (tail, piece) in zip(active, pieces) {
                // row j predicts the token after it; only continuation tokens are scored
                for position in piece.indices {
                    if position + 1 < tails[tail].count && position + 1 >= lead {
                        add(logits.rows(row..<row + 1), predicting: position + 1, of: tail)
                    }
                    row += 1
                }
            }
        }
        return continuations.indices.map {
            ContinuationScore(logLikelihood: logLikelihoods[$0], isGreedy: greedy[$0], tokenCount: continuations[$0].count)
        }
    }

    /// log p(tokens[i] | tokens[..<i]) for i in 1..<count, from position 0: the terms of a
    /// perplexity. Runs through a cache in `promptChunk`s, as every prompt does, so the
    /// logits alive stay small for a long window and each term is the bits any other path
    /// computes for it.
    public func tokenLogProbabilities(_ tokens: [Int32]) -> [Float] {
        precondition(
            tokens.count <= config.maxPositionEmbeddings,
            "LlamaModel.tokenLogProbabilities: \(tokens.count) tokens for a context of \(config.maxPositionEmbeddings)")
        guard tokens.count > 1 else { return [] }
        let cache = makeCache(capacity: tokens.count)
        var result: [Float] = []
        result.reserveCapacity(tokens.count - 1)
        for start in stride(from: 0, to: tokens.count, by: Self.promptChunk) {
            let end = min(start + Self.promptChunk, tokens.count)
            let logits = forward(Array(tokens[start..<end]), cache: cache, logits: .all)!
            // the chunk's last row predicts the next chunk's first token (none after the end)
            let scored = min(end, tokens.count - 1) - start
            if scored > 0 {
                result += Kernels.logProbabilities(logits: logits.rows(0..<scored), targets: Array(tokens[start + 1...start + scored]))
            }
        }
        return result
    }
}
