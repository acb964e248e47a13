import Foundation

/// What one sequence of a `GenerationBatch` asks for.
public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    public var sampling: SamplingParameters
    public var stop: StopConditions
    /// The adapter this sequence runs with (nil: the adapters the model had when the batch
    /// was made).
    public var adapter: PreparedAdapter?
    /// Log-probabilities of each generated token, with this many most likely alternatives
    /// (nil: none).
    public var logprobs: Int?
    /// Also the log-probabilities of the prompt's tokens (with `logprobs` alternatives).
    public var echo: Bool

    public init(
        prompt: [Int32], sampling: SamplingParameters = .init(), stop: StopConditions = .init(), adapter: PreparedAdapter? = nil,
        logprobs: Int? = nil, echo: Bool = false
    ) {
        self.prompt = prompt
        self.sampling = sampling
        self.stop = stop
        self.adapter = adapter
        self.logprobs = logprobs
        self.echo = echo
    }
}

/// What a `GenerationBatch` reports for one sequence, in this order: the prompt's
/// log-probabilities (with `echo`), the tokens, text held back to the end, the summary.
public enum GenerationUpdate: Sendable {
    case prompt([TokenLogProbability])
    /// A new token, the text it completes (empty while a UTF-8 character or a possible stop
    /// string is still open) and its log-probability when asked for. A stop token comes
    /// too, with no text, as OpenAI's and vLLM's log-probabilities list it; the summary's
    /// `generatedTokens` does not count it.
    case token(id: Int32, text: String, logprob: TokenLogProbability?)
    case text(String)
    case finished(GenerationSummary)
}

/// Sequences generated together, joining and leaving between steps (continuous batching):
/// each step runs the prompts of newly added sequences, then one token for every active
/// one, in one forward pass per adapter. Each sequence has its own cache, sampler and stop
/// rules and samples as `Generator.generate(prompt:)` would: its text does not depend on
/// which other sequences share its steps.
///
/// Not thread-safe: one thread adds and steps (`GenerationService` runs one for requests
/// arriving from many).
public final class GenerationBatch {
    public let generator: Generator
    /// The most sequences active at once.
    public let capacity: Int
    /// The most tokens (prompt and generated) one sequence may hold.
    public let context: Int
    private var admitted: [Sequence] = []
    private var active: [Sequence] = []
    /// What a request without an adapter runs with.
    private let attached: PreparedAdapter

    /// Tokens the prompts of newly admitted sequences go through per forward pass.
    static let prefillBudget = 256

    public init(generator: Generator, capacity: Int, context: Int? = nil) {
        precondition(capacity > 0, "GenerationBatch: capacity \(capacity)")
        self.generator = generator
        self.capacity = capacity
        self.context = min(context ?? .max, generator.model.config.maxPositionEmbeddings)
        attached = generator.model.attachedAdapters
    }

    public var count: Int { admitted.count + active.count }
    public var room: Int { capacity - count }
    public var isEmpty: Bool { count == 0 }

    /// Adds a sequence; it starts with the next step. `onUpdate` is called on the stepping
    /// thread; returning false cancels the sequence (it then finishes as cancelled).
    public func add(_ request: GenerationRequest, onUpdate: @escaping (GenerationUpdate) -> Bool) {
        precondition(room > 0, "GenerationBatch: full")
        precondition(
            !request.prompt.isEmpty && request.prompt.count <= context,
            "GenerationBatch: an empty prompt, or one longer than the context of \(context)")
        let capacity = max(min(context, request.prompt.count + max(request.stop.maxTokens, 0)), request.prompt.count)
        admitted.append(
            Sequence(
                request: request, onUpdate: onUpdate, context: request.prompt, sampler: Sampler(request.sampling),
                text: GeneratedText(tokenizer: generator.tokenizer, stopStrings: request.stop.stopStrings),
                cache: generator.model.makeCache(capacity: capacity),
                stopTokens: request.stop.stopTokens ?? generator.tokenizer.endOfGenerationTokens))
    }

    /// Finishes every sequence as cancelled.
    public func cancelAll() {
        for var sequence in admitted + active { finish(&sequence, .cancelled) }
        admitted = []
        active = []
    }

    /// Runs the added prompts, then one token for each active sequence.
    public func step() {
        prefill()
        var next: [Sequence] = []
        for var sequence in active {
            if sequence.cancelled {
                finish(&sequence, .cancelled)
                continue
            }
            if sequence.generated >= sequence.request.stop.maxTokens {
                finish(&sequence, .maxTokens)
                continue
            }
            let id = sequence.sampler.next(logits: sequence.logits, context: sequence.context)
            let logprob = sequence.request.logprobs.map { TokenLogProbability(of: id, logits: sequence.logits, top: $0) }
            if sequence.stopTokens.contains(id) {
                _ = sequence.onUpdate(.token(id: id, text: "", logprob: logprob))
                finish(&sequence, .stopToken)
                continue
            }
            sequence.generated += 1
            sequence.context.append(id)
            let (piece, stopped) = sequence.text.append(id)
            if !sequence.onUpdate(.token(id: id, text: piece, logprob: logprob)) { sequence.cancelled = true }
            if stopped {
                finish(&sequence, .stopString)
                continue
            }
            if sequence.cache.free == 0 {
                finish(&sequence, sequence.cache.count >= context ? .contextFull : .maxTokens)
                continue
            }
            next.append(sequence)
        }
        active = next
        for group in Self.groups(active.map { ($0.request.adapter, false) }) {
            generator.model.use(group.adapter ?? attached)
            let logits = generator.model.forward(
                group.members.map { active[$0].context.last! }, sequences: Array(repeating: 1, count: group.members.count),
                caches: group.members.map { active[$0].cache }, logits: .last)!
            for (row, index) in group.members.enumerated() { active[index].logits = logits.rows(row..<row + 1).scalars }
        }
    }

    private func finish(_ sequence: inout Sequence, _ reason: GenerationSummary.Reason) {
        if reason != .stopString {
            let rest = sequence.text.finish()
            if !rest.isEmpty { _ = sequence.onUpdate(.text(rest)) }
        }
        let prefillSeconds = sequence.prefillSeconds ?? Date().timeIntervalSince(sequence.start)
        _ = sequence.onUpdate(
            .finished(
                GenerationSummary(
                    reason: reason, promptTokens: sequence.request.prompt.count, reusedTokens: 0, generatedTokens: sequence.generated,
                    prefillSeconds: prefillSeconds, decodeSeconds: Date().timeIntervalSince(sequence.start) - prefillSeconds,
                    text: sequence.text.text)))
    }

    /// One sequence of the batch.
    private struct Sequence {
        let request: GenerationRequest
        let onUpdate: (GenerationUpdate) -> Bool
        var context: [Int32]
        var sampler: Sampler
        var text: GeneratedText
        let cache: KVCache
        let stopTokens: Set<Int32>
        var generated = 0
        var logits: [Float] = []
        /// Log-probabilities of the prompt's tokens so far (with `echo`).
        var promptLogprobs: [TokenLogProbability] = []
        var cancelled = false
        let start = Date()
        var prefillSeconds: Double?
    }

    /// Sequences that run in one forward pass: the same adapter, and all needing every
    /// row's logits (echo) or none (a pass's rows do not depend on its neighbours, but
    /// keeping the two apart keeps the arithmetic of the rest exactly the same).
    private static func groups(_ keys: [(adapter: PreparedAdapter?, echo: Bool)]) -> [(
        adapter: PreparedAdapter?, echo: Bool, members: [Int]
    )] {
        var groups: [(adapter: PreparedAdapter?, echo: Bool, members: [Int])] = []
        for (index, key) in keys.enumerated() {
            if let g = groups.firstIndex(where: { $0.adapter === key.adapter && $0.echo == key.echo }) {
                groups[g].members.append(index)
            } else {
                groups.append((key.adapter, key.echo, [index]))
            }
        }
        return groups
    }

    /// Runs the prompts of newly admitted sequences through their caches, several side by
    /// side per pass (up to `prefillBudget` tokens), keeps each prompt's last logits (and
    /// with echo every token's log-probability), and makes them active. Each prompt goes in
    /// the `LlamaModel.promptChunk` pieces `generate(prompt:)` uses, never cut where its
    /// neighbours happen to end: a row's arithmetic then does not depend on which other
    /// prompts share its batch, and a run gives the same text however it is batched.
    private func prefill() {
        guard !admitted.isEmpty else { return }
        for group in Self.groups(admitted.map { ($0.request.adapter, $0.request.echo) }) {
            generator.model.use(group.adapter ?? attached)
            var pieces: [(sequence: Int, range: Range<Int>)] = []
            func run() {
                guard !pieces.isEmpty else { return }
                let tokens = pieces.flatMap { admitted[$0.sequence].context[$0.range] }
                let logits = generator.model.forward(
                    tokens, sequences: pieces.map(\.range.count), caches: pieces.map { admitted[$0.sequence].cache },
                    logits: group.echo ? .all : .last)!
                var row = 0
                for (index, piece) in pieces.enumerated() {
                    let last = piece.range.upperBound == admitted[piece.sequence].context.count
                    if group.echo {
                        record(promptRows: logits.rows(row..<row + piece.range.count), of: piece.sequence, at: piece.range)
                        row += piece.range.count
                    }
                    if last {
                        let lastRow = group.echo ? row - 1 : index
                        admitted[piece.sequence].logits = logits.rows(lastRow..<lastRow + 1).scalars
                        admitted[piece.sequence].prefillSeconds = Date().timeIntervalSince(admitted[piece.sequence].start)
                    }
                }
                pieces = []
            }
            var used = 0
            for index in group.members {
                let length = admitted[index].context.count
                for start in stride(from: 0, to: length, by: LlamaModel.promptChunk) {
                    let piece = start..<min(start + LlamaModel.promptChunk, length)
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
        for index in admitted.indices where admitted[index].request.echo {
            if !admitted[index].onUpdate(.prompt(admitted[index].promptLogprobs)) { admitted[index].cancelled = true }
            admitted[index].promptLogprobs = []
        }
        active += admitted
        admitted = []
    }

    /// The log-probabilities of the prompt tokens a piece's rows predict (the first token
    /// has none: nothing comes before it).
    private func record(promptRows logits: Tensor, of sequence: Int, at range: Range<Int>) {
        let prompt = admitted[sequence].request.prompt
        let top = admitted[sequence].request.logprobs ?? 0
        if range.lowerBound == 0 { admitted[sequence].promptLogprobs.append(TokenLogProbability(token: prompt[0], logprob: nil, top: [])) }
        let predicted = range.filter { $0 + 1 < prompt.count }
        guard !predicted.isEmpty else { return }
        admitted[sequence].promptLogprobs += TokenLogProbability.entries(
            predicting: predicted.map { prompt[$0 + 1] }, logits: logits.rows(0..<predicted.count), top: top)
    }
}
