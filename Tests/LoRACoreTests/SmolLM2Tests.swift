import Foundation
import LoRACore
import Testing

/// The real model against transformers loading the same GGUF (scripts/make-smollm2-fixtures.py).
@Suite(.enabled(if: RealModel.available, "SmolLM2 not fetched: run scripts/fetch-model or make test"))
struct SmolLM2Tests {
    struct TokenizerCase: Decodable {
        let text: String
        let ids: [Int32]
    }
    struct TokenizerFixture: Decodable { let cases: [TokenizerCase] }

    @Test func tokenizerMatchesHuggingFaceOnTheCorpus() throws {
        let tokenizer = RealModel.int8.tokenizer
        for item in try Fixtures.json("smollm2-tokenizer.json", as: TokenizerFixture.self).cases {
            #expect(tokenizer.encode(item.text, parseSpecial: true, addBOS: false) == item.ids, "\(item.text.debugDescription)")
            #expect(tokenizer.decode(item.ids, includeSpecial: true) == item.text)
        }
    }

    @Test func controlTokenTextIsPlainTextWithoutParseSpecial() {
        let tokenizer = RealModel.int8.tokenizer
        let ids = tokenizer.encode("<|im_start|>", parseSpecial: false, addBOS: false)
        #expect(ids.count > 1 && !ids.contains(1))
        #expect(tokenizer.decode(ids) == "<|im_start|>")
        #expect(tokenizer.encode("<|im_start|>", parseSpecial: true, addBOS: false) == [1])
        #expect(tokenizer.decode([1, 19556]) == "Hello" && tokenizer.decode([1, 19556], includeSpecial: true) == "<|im_start|>Hello")
    }

    struct LogitsPosition: Decodable {
        let argmax: Int
        let max: Double
        let min: Double
        let ids: [Int]
        let logits: [Double]
    }
    struct LogitsFixture: Decodable {
        let ids: [Int32]
        let positions: [LogitsPosition]
        let perplexity2000: Double
    }

    @Test func f32LogitsMatchTransformersAtEveryPosition() throws {
        let fixture = try Fixtures.json("smollm2-logits.json", as: LogitsFixture.self)
        let model = RealModel.f32
        #expect(model.tokenizer.encode(try Self.logitsText(), parseSpecial: true, addBOS: false).prefix(64).elementsEqual(fixture.ids))
        let logits = try #require(model.model.forward(fixture.ids, logits: .all))
        var worst = 0.0
        for (t, position) in fixture.positions.enumerated() {
            let row = logits.rows(t..<t + 1).scalars
            let range = position.max - position.min
            for (id, expected) in zip(position.ids, position.logits) {
                worst = max(worst, abs(Double(row[id]) - expected) / range)
            }
            #expect(row.indices.max { row[$0] < row[$1] } == position.argmax, "top-1 differs at position \(t)")
        }
        print("SmolLM2 f32 logits vs transformers: worst |diff| / logit range = \(worst)")
        #expect(worst <= 1e-3)
    }

    static func logitsText() throws -> String {
        struct Text: Decodable { let text: String }
        return try Fixtures.json("smollm2-logits.json", as: Text.self).text
    }

    @Test func quantizedPerplexityStaysWithinOnePercentOfF32() throws {
        let text = try Fixtures.text("apache-2.0.txt")
        let ids = Array(RealModel.int8.tokenizer.encode(text, parseSpecial: false, addBOS: false).prefix(2000))
        #expect(ids.count == 2000)
        func perplexity(_ model: LanguageModel) -> Double {
            let logits = model.model.forward(ids, logits: .all)!
            let logprobs = Kernels.logProbabilities(logits: logits.rows(0..<ids.count - 1), targets: Array(ids.dropFirst()))
            return exp(-logprobs.reduce(0.0) { $0 + Double($1) } / Double(logprobs.count))
        }
        let reference = try Fixtures.json("smollm2-logits.json", as: LogitsFixture.self).perplexity2000
        let f32 = perplexity(RealModel.f32)
        let int8 = perplexity(RealModel.int8)
        let q4 = perplexity(RealModel.q4)
        print("SmolLM2 perplexity of 2000 tokens: f32 \(f32), int8 \(int8), q4 \(q4), transformers \(reference)")
        #expect(abs(f32 - reference) / reference < 1e-4)
        #expect(abs(int8 - f32) / f32 < 0.01)
        #expect(abs(q4 - f32) / f32 < 0.01)
        // the q4 model holds the file's blocks: its weights are the f32 model's exactly
        #expect(RealModel.q4.summary.conversions.counts == ["Q4_1 → Q4_1": 210, "Q8_0 → Q8_0": 1])
        let q4Weight = RealModel.q4.model.layers[3].mlp.downProj.weight.dequantized()
        #expect(q4Weight.scalars == RealModel.f32.model.layers[3].mlp.downProj.weight.dequantized().scalars)
    }

    /// Prefill then one token at a time through the cache gives the logits of one batch. In
    /// f32 only the summation order differs. In int8, activations are rounded to int8 per
    /// row, so an f32 difference in the last bit can flip a rounding and the flips compound
    /// over 30 layers: the difference must stay at the int8 mode's own distance from f32.
    @Test func decodingThroughTheCacheMatchesOneBatch() throws {
        let ids = Array(RealModel.f32.tokenizer.encode(try Self.logitsText(), parseSpecial: false, addBOS: false).prefix(40))
        func cachedVersusBatch(_ model: LlamaModel) throws -> (worst: Float, batch: Tensor) {
            let full = try #require(model.forward(ids, logits: .all))
            let cache = model.makeCache(capacity: 40)
            _ = model.forward(Array(ids.prefix(30)), cache: cache, logits: .none)
            var worst: Float = 0
            for t in 30..<40 {
                let step = try #require(model.forward([ids[t]], cache: cache, logits: .last)).scalars
                let expected = full.rows(t..<t + 1).scalars
                let range = expected.max()! - expected.min()!
                worst = max(worst, zip(step, expected).map { abs($0 - $1) / range }.max()!)
            }
            #expect(cache.count == 40 && cache.free == 0)
            return (worst, full)
        }
        let (f32Worst, f32Batch) = try cachedVersusBatch(RealModel.f32.model)
        #expect(f32Worst <= 1e-5)
        for (name, model) in [("int8", RealModel.int8), ("q4", RealModel.q4)] {
            let (worst, batch) = try cachedVersusBatch(model.model)
            var distance: Float = 0
            for t in 30..<40 {
                let a = batch.rows(t..<t + 1).scalars
                let b = f32Batch.rows(t..<t + 1).scalars
                distance = max(distance, zip(a, b).map { abs($0 - $1) }.max()! / (b.max()! - b.min()!))
            }
            print(
                "SmolLM2 cached decode vs one batch, worst |diff| / range: f32 \(f32Worst), \(name) \(worst) (\(name) vs f32: \(distance))")
            #expect(worst <= 2 * distance, "\(name)")
        }
    }

    /// Exact text checks run on the f32 model: int8 rounding noise moves logits by up to
    /// about 2% of their range, enough to flip a near tie in a greedy choice.
    @Test func greedyGenerationStopsAndStreamsWholeCharacters() throws {
        let model = RealModel.f32
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompt = model.encodeChat([.user("What is the capital of France?")])
        var pieces: [String] = []
        let summary = generator.generate(prompt: prompt, stop: .init(maxTokens: 40)) { event in
            if case .token(_, let text) = event { pieces.append(text) }
            return true
        }
        #expect(summary.reason == .stopToken)
        #expect(summary.text.contains("Paris"))
        #expect(pieces.joined() == summary.text)
        // a stop string cuts the same greedy output just before it
        let cut = generator.generate(prompt: prompt, stop: .init(maxTokens: 40, stopStrings: ["Paris"]))
        #expect(cut.reason == .stopString)
        #expect(summary.text.hasPrefix(cut.text + "Paris"))
        // a stop string that only begins in the output holds that part back, then lets it go
        var streamed = ""
        let held = generator.generate(prompt: prompt, stop: .init(maxTokens: 40, stopStrings: ["Paris!", "capital of Germany"])) { event in
            switch event {
            case .token(_, let text), .text(let text): streamed += text
            case .finished: break
            }
            return true
        }
        #expect(held.reason == .stopToken && held.text == summary.text && streamed == summary.text)
        let short = generator.generate(prompt: prompt, stop: .init(maxTokens: 3))
        #expect(short.reason == .maxTokens && short.generatedTokens == 3)
    }

    /// A conversation's second turn reuses the cache of the first and answers as a fresh run does.
    @Test func aConversationReusesItsCache() throws {
        let model = RealModel.f32
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let cache = model.model.makeCache(capacity: 512)
        var messages: [ChatMessage] = [.user("Name a fruit.")]
        let first = generator.generate(prompt: model.encodeChat(messages), stop: .init(maxTokens: 24), cache: cache)
        #expect(first.reusedTokens == 0 && cache.count > first.promptTokens)
        messages += [.assistant(first.text), .user("And a vegetable?")]
        let prompt = model.encodeChat(messages)
        var reused: [Int32] = []
        var fresh: [Int32] = []
        let second = generator.generate(prompt: prompt, stop: .init(maxTokens: 24), cache: cache) { event in
            if case .token(let id, _) = event { reused.append(id) }
            return true
        }
        generator.generate(prompt: prompt, stop: .init(maxTokens: 24)) { event in
            if case .token(let id, _) = event { fresh.append(id) }
            return true
        }
        #expect(second.reusedTokens >= first.promptTokens) // at least the first prompt was not recomputed
        #expect(reused == fresh && !reused.isEmpty)
        #expect(Array(cache.tokens.prefix(prompt.count)) == prompt)
    }

    @Test func streamDeliversTheSameTokensAsTheCallback() async throws {
        let model = RealModel.int8
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompt = model.encodeChat([.user("Name three fruits.")])
        let sampling = SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, seed: 7)
        var expected: [Int32] = []
        generator.generate(prompt: prompt, sampling: sampling, stop: .init(maxTokens: 24)) { event in
            if case .token(let id, _) = event { expected.append(id) }
            return true
        }
        var streamed: [Int32] = []
        var finished = false
        for await event in generator.stream(prompt: prompt, sampling: sampling, stop: .init(maxTokens: 24)) {
            switch event {
            case .token(let id, _): streamed.append(id)
            case .finished: finished = true
            case .text: break
            }
        }
        #expect(finished && streamed == expected && !streamed.isEmpty)
    }

    @Test func chatFormatIsDetectedFromTheFile() {
        let model = RealModel.int8
        #expect(model.chatTemplate == .chatML(defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        // ChatML (LoRACore.docc/FileFormats.md): the ids of [user: "Hi"] with the generation prompt
        #expect(
            model.encodeChat([.user("Hi")]) == [
                1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018,
                411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198,
            ])
    }
}
