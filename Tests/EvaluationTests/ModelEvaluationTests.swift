import Evaluation
import Foundation
import LoRACore
import Testing

@Suite(.serialized, .enabled(if: RealModel.available, "SmolLM2 not fetched: run scripts/fetch-model or make test"))
struct ModelEvaluationTests {
    struct Fixture: Decodable {
        struct Request: Decodable {
            let context: [Int32]
            let continuation: [Int32]
            let greedy: Bool
        }
        struct Item: Decodable {
            let log_likelihoods: [Double]
            let requests: [Request]
            let acc: Bool
            let acc_norm: Bool
        }
        let items: [Item]
        let acc: Double
        let acc_norm: Double
    }

    /// Exact (f32) weights against transformers on the shipped MC set: the same requests
    /// (encode_pair), per-choice log-likelihoods within 1e-3, identical acc and acc_norm.
    @Test func multipleChoiceMatchesTransformers() throws {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/mc-general-smollm2", withExtension: "json"))
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let model = RealModel.f32
        let evaluation = MultipleChoiceEvaluation(model: model)
        let (items, _) = try MultipleChoiceSet.load(exampleData("mc-general.jsonl"))
        #expect(items.count == fixture.items.count)
        var worst = 0.0
        let scratch = Scratch()
        let (summary, complete) = try evaluation.run(
            items: items, itemsFile: "\(scratch.folder)/mc.jsonl", model: "smollm2", dataSHA256: "-", shots: 0)
        #expect(complete)
        for (item, expected) in zip(items, fixture.items) {
            for (choice, request) in zip(item.choices, expected.requests) {
                let (context, continuation) = evaluation.encode(context: item.context, continuation: " " + choice)
                #expect(context == request.context && continuation == request.continuation, "item \(item.id) \(choice)")
            }
            let scores = evaluation.logLikelihoods(item)
            worst = max(worst, zip(scores, expected.log_likelihoods).map { abs($0 - $1) }.max()!)
        }
        print("MC log-likelihoods vs transformers: worst |diff| \(worst)")
        #expect(worst < 1e-3)
        #expect(summary.acc == fixture.acc && summary.accNorm == fixture.acc_norm)
        #expect(summary.questions == 40 && abs(summary.accStderr - (summary.acc * (1 - summary.acc) / 39).squareRoot()) < 1e-12)
    }

    /// A stopped run resumed into the same file ends with exactly the lines of a run that was
    /// never stopped, in prompt order (int8, batched: the remaining prompts batch
    /// differently). Rounds are 4 batches of 3: the stop comes after the first 12 prompts.
    @Test func refusalEvaluationResumesToTheSameResults() throws {
        let prompts = Array(try PromptSet.load(exampleData("overrefusal-prompts.jsonl")).prefix(14))
        let evaluation = RefusalEvaluation(
            model: RealModel.int8, classifier: RefusalPhrases.xsTest,
            settings: GenerationSettings(maxTokens: 24, batchSize: 3))
        let scratch = Scratch()
        let whole = try evaluation.run(prompts: prompts, responsesFile: "\(scratch.folder)/whole.jsonl", model: "m", dataSHA256: "d")
        #expect(whole.complete && whole.summary.overall.refusal.total == 14)
        let calls = Counter()
        let stopped = try evaluation.run(
            prompts: prompts, responsesFile: "\(scratch.folder)/parts.jsonl", model: "m", dataSHA256: "d",
            shouldStop: { calls.next() >= 2 })
        #expect(!stopped.complete && stopped.summary.overall.refusal.total == 12)
        let resumed = try evaluation.run(prompts: prompts, responsesFile: "\(scratch.folder)/parts.jsonl", model: "m", dataSHA256: "d")
        #expect(resumed.complete && resumed.summary == whole.summary)
        func records(_ name: String) throws -> [String] {
            try String(contentsOfFile: "\(scratch.folder)/\(name)", encoding: .utf8).split(separator: "\n").map(String.init)
        }
        #expect(try records("whole.jsonl") == records("parts.jsonl"))
        // other settings into the same file: an error, not a mixed file
        let other = RefusalEvaluation(model: RealModel.int8, classifier: RefusalPhrases.xsTest, settings: GenerationSettings(maxTokens: 25))
        #expect(throws: EvaluationError.self) {
            try other.run(prompts: prompts, responsesFile: "\(scratch.folder)/parts.jsonl", model: "m", dataSHA256: "d")
        }
        // a kill in the middle of a line: the cut line is dropped and its prompt done again
        let path = "\(scratch.folder)/cut.jsonl"
        let lines = try records("whole.jsonl")
        try Data((lines.prefix(3).joined(separator: "\n") + "\n" + lines[3].prefix(20)).utf8).write(to: URL(fileURLWithPath: path))
        let repaired = try evaluation.run(prompts: prompts, responsesFile: path, model: "m", dataSHA256: "d")
        #expect(repaired.summary == whole.summary)
    }

    /// Sliding windows against the same sums computed by hand from full-window logits, on
    /// exact weights (int8 activations round differently through a cache than in one batch,
    /// see SmolLM2Tests.decodingThroughTheCacheMatchesOneBatch).
    @Test func perplexityWindowsScoreEveryTokenOnce() throws {
        let model = RealModel.f32
        let text = "The library opens at nine in the morning and closes at six in the evening, except on holidays. "
        let tokens = Array(model.tokenizer.encode(String(repeating: text, count: 8), parseSpecial: false, addBOS: nil).prefix(150))
        let (result, logProbabilities) = try PerplexityEvaluation(model: model, window: 64, stride: 32).run(tokens: tokens)
        #expect(result.scoredTokens == tokens.count - 1 && logProbabilities.count == tokens.count - 1)
        // by hand: window w starts at 32w; the tokens it adds are those past the previous window's end
        var expected: [Float] = []
        var scored = 1
        var start = 0
        while scored < tokens.count {
            let end = min(start + 64, tokens.count)
            let window = Array(tokens[start..<end])
            let logits = try #require(model.model.forward(window, logits: .all))
            let all = Kernels.logProbabilities(logits: logits.rows(0..<window.count - 1), targets: Array(window.dropFirst()))
            expected += all[(scored - start - 1)...]
            scored = end
            start += 32
        }
        let worst = zip(expected, logProbabilities).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-4, "worst log-probability difference \(worst)")
        let full = try PerplexityEvaluation(model: model, window: 2048).run(tokens: tokens).result
        #expect(full.perplexity < result.perplexity * 1.05) // more context never hurts much on repeated text
    }
}

/// Counts calls, for a stop condition checked by another closure.
final class Counter: @unchecked Sendable {
    private var count = 0
    func next() -> Int {
        count += 1
        return count
    }
}
