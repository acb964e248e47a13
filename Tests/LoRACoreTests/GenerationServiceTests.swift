import Foundation
import LoRACore
import Testing

/// Log-probabilities from logits, against a plain double-precision log-softmax.
@Test func tokenLogProbabilitiesAreALogSoftmaxWithTheLargestInOrder() {
    var generator = SystemRandomNumberGenerator()
    for vocab in [1, 7, 50, 333] {
        var logits = (0..<vocab).map { _ in Float.random(in: -8...8, using: &generator) }
        if vocab > 10 { logits[3] = logits[9] } // a tie: the lower id comes first
        let top = min(5, vocab)
        let entry = TokenLogProbability(of: Int32(vocab - 1), logits: logits, top: top)
        let lse = log(logits.reduce(0.0) { $0 + exp(Double($1)) })
        #expect(abs(Double(entry.logprob!) - (Double(logits[vocab - 1]) - lse)) < 1e-5)
        let expected = logits.indices.sorted { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }.prefix(top)
        #expect(entry.top.map(\.token) == expected.map(Int32.init))
        for alternative in entry.top {
            #expect(abs(Double(alternative.logprob) - (Double(logits[Int(alternative.token)]) - lse)) < 1e-5)
        }
        // the most likely token's own entry is the top entry's value exactly
        let best = entry.top[0].token
        #expect(TokenLogProbability(of: best, logits: logits, top: top).logprob == entry.top[0].logprob)
    }
}

@Suite(.enabled(if: RealModel.available, "SmolLM2 not fetched: run scripts/fetch-model or make test"))
struct GenerationServiceTests {
    static func prompts(_ model: LanguageModel) -> [[Int32]] {
        ["Name a colour.", "What is 7 times 8?", "Write a line about snow.", "Say hi.", "Name two rivers."].map {
            model.encodeChat([.user($0)])
        }
    }

    /// Echo: the prompt's log-probabilities are exactly those the model scores the prompt
    /// with, and the first token has none.
    @Test func echoGivesThePromptsLogProbabilities() throws {
        let model = RealModel.int8
        let prompt = Array(model.tokenizer.encode(String(try Fixtures.text("apache-2.0.txt").prefix(900))).prefix(150))
        let expected = model.model.tokenLogProbabilities(prompt)
        var entries: [TokenLogProbability] = []
        var tokens: [TokenLogProbability] = []
        let batch = GenerationBatch(generator: Generator(model: model.model, tokenizer: model.tokenizer), capacity: 2)
        batch.add(GenerationRequest(prompt: prompt, stop: .init(maxTokens: 2), logprobs: 3, echo: true)) { update in
            switch update {
            case .prompt(let got): entries = got
            case .token(_, _, let logprob): tokens.append(logprob!)
            default: break
            }
            return true
        }
        while !batch.isEmpty { batch.step() }
        #expect(entries.count == prompt.count && entries.map(\.token) == prompt)
        #expect(entries[0].logprob == nil && entries[0].top.isEmpty)
        #expect(entries.dropFirst().map { $0.logprob! } == expected) // the same bits: one chunking, one logsumexp
        #expect(entries.dropFirst().allSatisfy { $0.top.count == 3 })
        #expect(tokens.count == 2 && tokens.allSatisfy { $0.logprob == $0.top[0].logprob }) // greedy: the top token
    }

    /// Sequences with an adapter and without share the batch (each adapter's in its own
    /// pass) and produce what each produces alone with its adapter attached.
    @Test func requestsForDifferentAdaptersShareABatch() throws {
        let model = try LanguageModel.load(path: RealModel.path!, precision: .int8)
        let peft = try PEFTAdapter(folder: Fixtures.url("smollm2-trained-adapter").path)
        let adapter = try model.model.prepare(peft)
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompts = Self.prompts(model)
        let stop = StopConditions(maxTokens: 16)
        let plain = prompts.map { generator.generate(prompt: $0, stop: stop).text }
        try model.model.attach(peft)
        let adapted = prompts.map { generator.generate(prompt: $0, stop: stop).text }
        model.model.detachAdapters()
        #expect(plain != adapted)

        let batch = GenerationBatch(generator: generator, capacity: 4)
        var texts: [Int: String] = [:]
        var waiting = Array(prompts.indices.flatMap { [($0, false), ($0, true)] }.reversed())
        while !waiting.isEmpty || !batch.isEmpty {
            while batch.room > 0, let (index, withAdapter) = waiting.popLast() {
                let request = GenerationRequest(prompt: prompts[index], stop: stop, adapter: withAdapter ? adapter : nil)
                batch.add(request) { update in
                    if case .finished(let summary) = update { texts[index * 2 + (withAdapter ? 1 : 0)] = summary.text }
                    return true
                }
            }
            batch.step()
        }
        #expect(prompts.indices.map { texts[$0 * 2] } == plain)
        #expect(prompts.indices.map { texts[$0 * 2 + 1] } == adapted)
    }

    /// Requests from many tasks at once get what each gets alone; a cancelled stream ends
    /// its sequence and frees the slot.
    @Test func serviceAnswersConcurrentRequestsAsAlone() async throws {
        let model = RealModel.int8
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompts = Self.prompts(model)
        let sampling = SamplingParameters(temperature: 0.8, topP: 0.9, seed: 3)
        let stop = StopConditions(maxTokens: 20)
        let alone = prompts.map { generator.generate(prompt: $0, sampling: sampling, stop: stop).text }
        let service = GenerationService(generator: generator, batchSize: 3)
        defer { service.shutdown() }
        let together = await withTaskGroup(of: (Int, String).self) { group in
            for (index, prompt) in prompts.enumerated() {
                group.addTask {
                    var text = ""
                    for await update in service.stream(GenerationRequest(prompt: prompt, sampling: sampling, stop: stop)) {
                        if case .finished(let summary) = update { text = summary.text }
                    }
                    return (index, text)
                }
            }
            var texts = [String](repeating: "", count: prompts.count)
            for await (index, text) in group { texts[index] = text }
            return texts
        }
        #expect(together == alone)

        // a long request, dropped after two tokens
        var seen = 0
        for await update in service.stream(GenerationRequest(prompt: prompts[0], stop: .init(maxTokens: 2000, stopTokens: []))) {
            if case .token = update { seen += 1 }
            if seen == 2 { break }
        }
        let deadline = Date().addingTimeInterval(10)
        while service.load.running > 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(service.load.running == 0 && service.load.waiting == 0)
    }

    /// A cancelled ticket finishes as cancelled; the stop token is reported with its
    /// log-probability but not counted as generated.
    @Test func cancelledTicketsAndStopTokens() async throws {
        let model = RealModel.int8
        let service = GenerationService(generator: Generator(model: model.model, tokenizer: model.tokenizer), batchSize: 1)
        defer { service.shutdown() }
        let finished = Box<[GenerationSummary]>([])
        let long = GenerationRequest(prompt: Self.prompts(model)[0], stop: .init(maxTokens: 5000, stopTokens: []))
        let first = service.submit(long) { update in
            if case .finished(let summary) = update { finished.update { $0.append(summary) } }
        }
        let second = service.submit(long) { update in
            if case .finished(let summary) = update { finished.update { $0.append(summary) } }
        }
        second.cancel() // waiting behind the first: dropped without running
        first.cancel()
        let deadline = Date().addingTimeInterval(10)
        while finished.value.count < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(finished.value.map(\.reason) == [.cancelled, .cancelled])

        var last: (id: Int32, logprob: TokenLogProbability?)?
        var summary: GenerationSummary?
        for await update in service.stream(GenerationRequest(prompt: Self.prompts(model)[3], stop: .init(maxTokens: 200), logprobs: 1)) {
            if case .token(let id, _, let logprob) = update { last = (id, logprob) }
            if case .finished(let s) = update { summary = s }
        }
        #expect(summary?.reason == .stopToken)
        #expect(last.map { model.tokenizer.endOfGenerationTokens.contains($0.id) && $0.logprob != nil } == true)
    }
}

/// A value shared with the service's thread.
final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.withLock { stored } }
    func update(_ change: (inout T) -> Void) { lock.withLock { change(&stored) } }
}
