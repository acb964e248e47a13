import Foundation

/// When generation stops.
public struct StopConditions: Sendable {
    public var maxTokens: Int
    /// Generation ends before any of these texts; the text is not part of the output.
    public var stopStrings: [String]
    /// Generation ends at these tokens (not part of the output); nil: the tokenizer's
    /// end-of-generation tokens.
    public var stopTokens: Set<Int32>?

    public init(maxTokens: Int = 256, stopStrings: [String] = [], stopTokens: Set<Int32>? = nil) {
        self.maxTokens = maxTokens
        self.stopStrings = stopStrings
        self.stopTokens = stopTokens
    }
}

/// One step of a generation stream.
public enum GenerationEvent: Sendable {
    /// A new token and the text it completes (empty while a UTF-8 character or a possible
    /// stop string is still open).
    case token(id: Int32, text: String)
    /// Text held back until the end: the start of a stop string that never completed.
    case text(String)
    case finished(GenerationSummary)
}

public struct GenerationSummary: Sendable {
    public enum Reason: String, Sendable { case stopToken, stopString, maxTokens, contextFull, cancelled }
    public let reason: Reason
    public let promptTokens: Int
    /// Prompt tokens whose keys and values a given cache already held (not recomputed).
    public let reusedTokens: Int
    public let generatedTokens: Int
    /// Seconds spent on the prompt (prefill) and on the generated tokens (decode).
    public let prefillSeconds: Double
    public let decodeSeconds: Double
    public let text: String

    public var prefillTokensPerSecond: Double { Double(promptTokens - reusedTokens) / max(prefillSeconds, 1e-9) }
    public var decodeTokensPerSecond: Double { Double(max(generatedTokens - 1, 0)) / max(decodeSeconds, 1e-9) }

    /// The summary of a sequence that never started.
    static func cancelled(promptTokens: Int) -> GenerationSummary {
        GenerationSummary(
            reason: .cancelled, promptTokens: promptTokens, reusedTokens: 0, generatedTokens: 0, prefillSeconds: 0,
            decodeSeconds: 0, text: "")
    }
}

/// Autoregressive generation: one prefill of the prompt through the batched int8 GEMM,
/// then one token at a time through the KV cache and the GEMV path.
public struct Generator: Sendable {
    public let model: LlamaModel
    public let tokenizer: any Tokenizer

    public init(model: LlamaModel, tokenizer: any Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Generates after `prompt`, calling `onEvent` for every token and once at the end;
    /// `onEvent` returning false cancels. Returns the summary.
    ///
    /// With a `cache` (a conversation's), the prompt's longest prefix that the cache already
    /// holds is not recomputed, and the cache keeps the prompt and the answer afterwards.
    @discardableResult
    public func generate(
        prompt: [Int32], sampling: SamplingParameters = .init(), stop: StopConditions = .init(),
        cache given: KVCache? = nil,
        onEvent: (GenerationEvent) -> Bool = { _ in true }
    ) -> GenerationSummary {
        let room = given?.capacity ?? model.config.maxPositionEmbeddings
        precondition(!prompt.isEmpty && prompt.count <= room, "Generator: a prompt of \(prompt.count) tokens for a context of \(room)")
        let cache = given ?? model.makeCache(capacity: max(min(room, prompt.count + max(stop.maxTokens, 0)), prompt.count))
        // keep the shared prefix, but always run at least the prompt's last token for its logits
        let shared = min(zip(cache.tokens, prompt).prefix { $0 == $1 }.count, prompt.count - 1)
        cache.truncate(to: shared)
        let stopTokens = stop.stopTokens ?? tokenizer.endOfGenerationTokens
        var sampler = Sampler(sampling)
        var text = GeneratedText(tokenizer: tokenizer, stopStrings: stop.stopStrings)
        var context = prompt
        var generated = 0
        let start = Date()
        // The prompt goes through in chunks: as fast as one batch, with an eighth of the
        // activations of a 512-token prompt alive at once.
        var logits: [Float] = []
        for start in stride(from: shared, to: prompt.count, by: LlamaModel.promptChunk) {
            let chunk = Array(prompt[start..<min(start + LlamaModel.promptChunk, prompt.count)])
            let last = start + chunk.count == prompt.count
            let output = model.forward(chunk, cache: cache, logits: last ? .last : .none)
            if last { logits = output!.scalars }
        }
        let prefillSeconds = Date().timeIntervalSince(start)

        func finish(_ reason: GenerationSummary.Reason) -> GenerationSummary {
            if reason != .stopString {
                let rest = text.finish()
                if !rest.isEmpty { _ = onEvent(.text(rest)) }
            }
            let summary = GenerationSummary(
                reason: reason, promptTokens: prompt.count, reusedTokens: shared, generatedTokens: generated,
                prefillSeconds: prefillSeconds,
                decodeSeconds: Date().timeIntervalSince(start) - prefillSeconds,
                text: text.text)
            _ = onEvent(.finished(summary))
            return summary
        }

        while true {
            if generated >= stop.maxTokens { return finish(.maxTokens) }
            let id = sampler.next(logits: logits, context: context)
            if stopTokens.contains(id) { return finish(.stopToken) }
            generated += 1
            context.append(id)
            let (piece, stopped) = text.append(id)
            if stopped {
                if !piece.isEmpty { _ = onEvent(.token(id: id, text: piece)) }
                return finish(.stopString)
            }
            if !onEvent(.token(id: id, text: piece)) { return finish(.cancelled) }
            if cache.free == 0 {
                return finish(given != nil || cache.count >= model.config.maxPositionEmbeddings ? .contextFull : .maxTokens)
            }
            logits = model.forward([id], cache: cache, logits: .last)!.scalars
        }
    }

    /// The same as a stream: tokens and text pieces as they come, then the summary.
    /// Cancelling the consuming task stops generation.
    public func stream(
        prompt: [Int32], sampling: SamplingParameters = .init(), stop: StopConditions = .init(),
        cache: KVCache? = nil
    ) -> AsyncStream<GenerationEvent> {
        AsyncStream { continuation in
            let task = Task.detached {
                generate(prompt: prompt, sampling: sampling, stop: stop, cache: cache) { event in
                    if case .terminated = continuation.yield(event) { return false }
                    return !Task.isCancelled
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
