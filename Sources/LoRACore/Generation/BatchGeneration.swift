import Foundation

extension Generator {
    /// Tokens the prompts of newly admitted sequences go through per forward pass.
    static let prefillBudget = 256

    /// Generates after every prompt, up to `batchSize` sequences at once: each decoding
    /// step runs the active sequences together (B GEMVs become one small GEMM), each with
    /// its own cache, sampler and stop rules, and a finished sequence's slot goes to the
    /// next prompt. Every sequence samples as `generate(prompt:)` would with the same
    /// parameters. `onFinished` gets each summary as it completes (by prompt index);
    /// returning false cancels the rest. Returns the summaries in prompt order.
    @discardableResult
    public func generate(
        prompts: [[Int32]], sampling: SamplingParameters = .init(), stop: StopConditions = .init(),
        batchSize: Int = 16, onFinished: (Int, GenerationSummary) -> Bool = { _, _ in true }
    ) -> [GenerationSummary] {
        let room = model.config.maxPositionEmbeddings
        precondition(batchSize > 0, "Generator: batch size \(batchSize)")
        precondition(
            prompts.allSatisfy { !$0.isEmpty && $0.count <= room }, "Generator: an empty prompt, or one longer than the context of \(room)")
        let stopTokens = stop.stopTokens ?? tokenizer.endOfGenerationTokens
        var results = [GenerationSummary?](repeating: nil, count: prompts.count)
        var waiting = prompts.indices.makeIterator()
        var active: [Sequence] = []
        var cancelled = false

        func finish(_ sequence: inout Sequence, _ reason: GenerationSummary.Reason) {
            if reason != .stopString { _ = sequence.text.finish() }
            let now = Date()
            let summary = GenerationSummary(
                reason: reason, promptTokens: sequence.context.count - sequence.generated, reusedTokens: 0,
                generatedTokens: sequence.generated, prefillSeconds: sequence.prefillSeconds,
                decodeSeconds: now.timeIntervalSince(sequence.start) - sequence.prefillSeconds,
                text: sequence.text.text)
            results[sequence.index] = summary
            if !cancelled && !onFinished(sequence.index, summary) { cancelled = true }
        }

        while true {
            var admitted: [Sequence] = []
            while !cancelled, active.count + admitted.count < batchSize, let index = waiting.next() {
                let prompt = prompts[index]
                admitted.append(
                    Sequence(
                        index: index, context: prompt, sampler: Sampler(sampling),
                        text: GeneratedText(tokenizer: tokenizer, stopStrings: stop.stopStrings),
                        cache: model.makeCache(capacity: max(min(room, prompt.count + max(stop.maxTokens, 0)), prompt.count))))
            }
            prefill(&admitted)
            active += admitted
            if cancelled {
                for i in active.indices { finish(&active[i], .cancelled) }
                active = []
            }
            if active.isEmpty { break }

            // one token for every active sequence, then one forward pass for those that go on
            var next: [Sequence] = []
            for var sequence in active {
                if sequence.generated >= stop.maxTokens {
                    finish(&sequence, .maxTokens)
                    continue
                }
                let id = sequence.sampler.next(logits: sequence.logits, context: sequence.context)
                if stopTokens.contains(id) {
                    finish(&sequence, .stopToken)
                    continue
                }
                sequence.generated += 1
                sequence.context.append(id)
                if sequence.text.append(id).stopped {
                    finish(&sequence, .stopString)
                    continue
                }
                if sequence.cache.free == 0 {
                    finish(&sequence, sequence.cache.count >= room ? .contextFull : .maxTokens)
                    continue
                }
                next.append(sequence)
            }
            active = next
            guard !active.isEmpty else { continue }
            let logits = model.forward(
                active.map { $0.context.last! }, sequences: Array(repeating: 1, count: active.count),
                caches: active.map(\.cache), logits: .last)!
            for i in active.indices { active[i].logits = logits.rows(i..<i + 1).scalars }
        }
        for index in prompts.indices where results[index] == nil {
            results[index] = GenerationSummary(
                reason: .cancelled, promptTokens: prompts[index].count, reusedTokens: 0, generatedTokens: 0,
                prefillSeconds: 0, decodeSeconds: 0, text: "")
        }
        return results.map { $0! }
    }

    /// One sequence of a batched generation.
    private struct Sequence {
        let index: Int
        var context: [Int32]
        var sampler: Sampler
        var text: GeneratedText
        let cache: KVCache
        var generated = 0
        var logits: [Float] = []
        let start = Date()
        var prefillSeconds = 0.0
    }

    /// Runs the prompts of newly admitted sequences through their caches, several side by
    /// side per pass (up to `prefillBudget` tokens), and keeps each prompt's last logits.
    /// Each prompt goes in the `prefillChunk` pieces `generate(prompt:)` uses, never cut
    /// where its neighbours happen to end: a row's arithmetic then does not depend on which
    /// other prompts share its batch, and a run gives the same text however it is batched.
    private func prefill(_ sequences: inout [Sequence]) {
        var pieces: [(sequence: Int, range: Range<Int>)] = []
        func run() {
            guard !pieces.isEmpty else { return }
            let tokens = pieces.flatMap { sequences[$0.sequence].context[$0.range] }
            let logits = model.forward(
                tokens, sequences: pieces.map(\.range.count), caches: pieces.map { sequences[$0.sequence].cache },
                logits: .last)!
            for (row, piece) in pieces.enumerated() where piece.range.upperBound == sequences[piece.sequence].context.count {
                sequences[piece.sequence].logits = logits.rows(row..<row + 1).scalars
                sequences[piece.sequence].prefillSeconds = Date().timeIntervalSince(sequences[piece.sequence].start)
            }
            pieces = []
        }
        var used = 0
        for index in sequences.indices {
            let length = sequences[index].context.count
            for start in stride(from: 0, to: length, by: Self.prefillChunk) {
                let piece = start..<min(start + Self.prefillChunk, length)
                // a prompt's next piece waits for the pass after the one holding its previous piece
                if used + piece.count > Self.prefillBudget || pieces.contains(where: { $0.sequence == index }) {
                    run()
                    used = 0
                }
                pieces.append((index, piece))
                used += piece.count
            }
        }
        run()
    }
}
