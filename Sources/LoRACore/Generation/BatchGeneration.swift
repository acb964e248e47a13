import Foundation

extension Generator {
    /// Generates after every prompt, up to `batchSize` sequences at once (a
    /// `GenerationBatch`): each decoding step runs the active sequences together (B GEMVs
    /// become one small GEMM), and a finished sequence's slot goes to the next prompt. Every
    /// sequence samples as `generate(prompt:)` would with the same parameters. `onFinished`
    /// gets each summary as it completes (by prompt index); returning false cancels the
    /// rest. Returns the summaries in prompt order.
    @discardableResult
    public func generate(
        prompts: [[Int32]], sampling: SamplingParameters = .init(), stop: StopConditions = .init(),
        batchSize: Int = 16, onFinished: (Int, GenerationSummary) -> Bool = { _, _ in true }
    ) -> [GenerationSummary] {
        withoutActuallyEscaping(onFinished) { onFinished in
            let batch = GenerationBatch(generator: self, capacity: batchSize)
            var results = [GenerationSummary?](repeating: nil, count: prompts.count)
            var waiting = prompts.indices.makeIterator()
            var cancelled = false
            while true {
                while !cancelled, batch.room > 0, let index = waiting.next() {
                    batch.add(GenerationRequest(prompt: prompts[index], sampling: sampling, stop: stop)) { update in
                        if case .finished(let summary) = update {
                            results[index] = summary
                            if !cancelled && !onFinished(index, summary) { cancelled = true }
                        }
                        return true
                    }
                }
                if cancelled { batch.cancelAll() }
                if batch.isEmpty { break }
                batch.step()
            }
            for index in prompts.indices where results[index] == nil {
                results[index] = .cancelled(promptTokens: prompts[index].count)
            }
            return results.map { $0! }
        }
    }
}
