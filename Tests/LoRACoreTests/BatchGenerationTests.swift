import Foundation
import LoRACore
import Testing

@Suite(.enabled(if: RealModel.available, "SmolLM2 not fetched: run scripts/fetch-model or make test"))
struct BatchGenerationTests {
    /// Prompts of different lengths, one longer than a prefill pass (it spans two).
    static func prompts(_ model: LanguageModel) throws -> [[Int32]] {
        let questions = [
            "What is the capital of France?", "Name three colours.", "Write a haiku about rain.",
            "How many legs does a spider have?", "Say hello in Spanish.", "What is 12 times 12?", "Name a planet.",
        ]
        let long = String(try Fixtures.text("apache-2.0.txt").prefix(1600))
        return questions.map { model.encodeChat([.user($0)]) } + [model.encodeChat([.user("Summarize: " + long)])]
    }

    /// Exact (f32) weights: batched greedy output is the one-at-a-time output, token for
    /// token, while slots are refilled (batch 3 of 8 prompts) and stop rules end sequences
    /// at different steps.
    @Test func batchedGreedyEqualsOneAtATime() throws {
        let model = RealModel.f32
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompts = try Self.prompts(model)
        #expect(prompts.last!.count > 256 && Set(prompts.map(\.count)).count > 4)
        let stop = StopConditions(maxTokens: 24, stopStrings: ["\n\n"])
        let single = prompts.map { generator.generate(prompt: $0, stop: stop) }
        var order: [Int] = []
        let batched = generator.generate(prompts: prompts, stop: stop, batchSize: 3) { index, _ in
            order.append(index)
            return true
        }
        #expect(batched.map(\.text) == single.map(\.text))
        #expect(batched.map(\.reason) == single.map(\.reason))
        #expect(batched.map(\.generatedTokens) == single.map(\.generatedTokens))
        #expect(Set(Set(single.map(\.reason)).map(\.rawValue)).count > 1) // sequences ended in different ways
        #expect(order.sorted() == Array(prompts.indices))
    }

    /// A sequence's text alone, then in batches of the given sizes, in order and reversed.
    static func expectTextIndependentOfTheBatch(_ model: LanguageModel, batchSizes: (Int, Int)) throws {
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompts = try prompts(model)
        let stop = StopConditions(maxTokens: 32)
        let single = prompts.map { generator.generate(prompt: $0, stop: stop).text }
        #expect(generator.generate(prompts: prompts, stop: stop, batchSize: batchSizes.0).map(\.text) == single)
        #expect(
            generator.generate(prompts: Array(prompts.reversed()), stop: stop, batchSize: batchSizes.1).map(\.text) == single.reversed())
    }

    /// int8 weights too: a sequence's text does not depend on which prompts share its
    /// batch (what lets an interrupted evaluation resume to the same results).
    @Test func int8TextDoesNotDependOnTheBatch() throws {
        try Self.expectTextIndependentOfTheBatch(RealModel.int8, batchSizes: (3, 5))
    }

    /// And on the file's own 4-bit blocks.
    @Test func q4TextDoesNotDependOnTheBatch() throws {
        try Self.expectTextIndependentOfTheBatch(RealModel.q4, batchSizes: (2, 7))
    }

    /// With an adapter too (its own model: RealModel's is shared): the adapter's output is
    /// summed row by row in a fixed order, so evaluating a fine-tune resumes to the same text.
    @Test func int8TextWithAnAdapterDoesNotDependOnTheBatch() throws {
        let model = try LanguageModel.load(path: RealModel.path!, precision: .int8)
        try model.model.attach(PEFTAdapter(folder: Fixtures.url("smollm2-trained-adapter").path))
        try Self.expectTextIndependentOfTheBatch(model, batchSizes: (3, 8))
    }

    @Test func cancellingFinishesTheRestAsCancelled() throws {
        let model = RealModel.int8
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompts = try Self.prompts(model)
        var finished = 0
        let results = generator.generate(prompts: prompts, stop: .init(maxTokens: 8), batchSize: 2) { _, _ in
            finished += 1
            return finished < 2
        }
        #expect(finished == 2)
        #expect(results.filter { $0.reason == .cancelled }.count == prompts.count - 2)
    }

    /// Continuations of one context from copies of its cache score as the whole sequence does.
    @Test func continuationsFromCacheCopiesMatchWholeSequences() throws {
        let model = RealModel.f32.model
        let context: [Int32] = [1, 504, 3458, 282, 4649, 314, 253]
        let continuations: [[Int32]] = [[7042, 30], [8763], [25, 216, 2260]]
        let cache = model.makeCache(capacity: 16)
        _ = model.forward(context, cache: cache, logits: .none)
        let caches = continuations.map { _ in cache.copy(capacity: context.count + 3) }
        let together = try #require(
            model.forward(continuations.flatMap { $0 }, sequences: continuations.map(\.count), caches: caches, logits: .all))
        var row = 0
        for continuation in continuations {
            let whole = try #require(model.forward(context + continuation, logits: .all))
            let expected = whole.rows(context.count..<context.count + continuation.count).scalars
            let got = together.rows(row..<row + continuation.count).scalars
            let worst = zip(expected, got).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-3, "continuation \(continuation): worst logit difference \(worst)")
            row += continuation.count
        }
        #expect(caches.allSatisfy { $0.tokens.count == context.count + ($0 === caches[1] ? 1 : $0 === caches[0] ? 2 : 3) })
    }
}
