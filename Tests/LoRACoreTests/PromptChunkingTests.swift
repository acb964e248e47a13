import Foundation
import LoRACore
import Testing

/// One chunking everywhere (`LlamaModel.promptChunk`): scoring continuations from a shared
/// context, perplexity terms, and a batch's echo compute the same bits for the same
/// sequence, on the quantized paths too, where a last-bit difference in attention would
/// otherwise grow into a visible one.
@Suite(.enabled(if: RealModel.available, "SmolLM2 not fetched: run scripts/fetch-model or make test"))
struct PromptChunkingTests {
    @Test(arguments: [WeightPrecision.int8, .q4])
    func everyPathScoresASequenceWithTheSameBits(precision: WeightPrecision) throws {
        let model = precision == .int8 ? RealModel.int8 : RealModel.q4
        let text = try Fixtures.text("apache-2.0.txt")
        let tokens = Array(model.tokenizer.encode(String(text.prefix(2000))).prefix(300))
        let continuations: [[Int32]] = [[tokens[200]], Array(tokens[200..<203]), Array(tokens[200..<275])]
        // contexts ending inside a chunk, on a boundary, and one token past it
        for contextLength in [37, 64, 129] {
            let context = Array(tokens[..<contextLength])
            let scores = model.model.score(context: context, continuations: continuations)
            let batch = GenerationBatch(generator: Generator(model: model.model, tokenizer: model.tokenizer), capacity: 3)
            var echoed: [[TokenLogProbability]] = Array(repeating: [], count: continuations.count)
            for (index, continuation) in continuations.enumerated() {
                let whole = context + continuation
                let terms = model.model.tokenLogProbabilities(whole)
                let expected = terms[(contextLength - 1)...].reduce(0.0) { $0 + Double($1) }
                #expect(scores[index].logLikelihood == expected, "context \(contextLength), continuation \(continuation.count)")
                batch.add(GenerationRequest(prompt: whole, stop: .init(maxTokens: 0), logprobs: 0, echo: true)) { update in
                    if case .prompt(let entries) = update { echoed[index] = entries }
                    return true
                }
            }
            while !batch.isEmpty { batch.step() }
            for (index, continuation) in continuations.enumerated() {
                let terms = model.model.tokenLogProbabilities(context + continuation)
                #expect(echoed[index].dropFirst().map { $0.logprob! } == terms, "echo, context \(contextLength)")
            }
        }
    }
}
