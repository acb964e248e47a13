import ArgumentParser
import Foundation
import LoRACore

/// Sampling and stopping flags shared by `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Temperature; 0 is greedy.") var temperature: Float = 0
    @Option(help: "Top-k (0: off).") var topK = 0
    @Option(help: "Top-p (1: off).") var topP: Float = 1
    @Option(help: "Min-p (0: off).") var minP: Float = 0
    @Option(help: "Repetition penalty (1: off).") var repetitionPenalty: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Most tokens to generate.") var maxTokens = 256
    @Option(name: .customLong("stop"), help: "Stop before this text (repeatable).") var stopStrings: [String] = []
    @Option(name: .customLong("stop-token"), help: "Stop at this token id (repeatable; default: the model's end-of-turn tokens).")
    var stopTokens: [Int32] = []

    var sampling: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty, seed: seed)
    }

    var stop: StopConditions {
        StopConditions(maxTokens: maxTokens, stopStrings: stopStrings, stopTokens: stopTokens.isEmpty ? nil : Set(stopTokens))
    }
}

/// Streams one generation to standard output; the timing summary goes to standard error.
func streamGeneration(
    _ generator: Generator, prompt: [Int32], options: SamplingOptions,
    cache: KVCache? = nil
) throws -> GenerationSummary {
    let context = cache?.capacity ?? generator.model.config.maxPositionEmbeddings
    guard !prompt.isEmpty, prompt.count < context else {
        throw ValidationError("the prompt has \(prompt.count) tokens; the model's context holds \(context)")
    }
    let summary = generator.generate(prompt: prompt, sampling: options.sampling, stop: options.stop, cache: cache) { event in
        switch event {
        case .token(_, let text), .text(let text):
            FileHandle.standardOutput.write(Data(text.utf8))
        case .finished:
            FileHandle.standardOutput.write(Data("\n".utf8))
        }
        return true
    }
    FileHandle.standardError.write(
        Data(
            String(
                format: "[%d prompt tokens %.1f tok/s%@, %d generated %.1f tok/s, stop: %@]\n", summary.promptTokens,
                summary.prefillTokensPerSecond, summary.reusedTokens > 0 ? " (\(summary.reusedTokens) cached)" : "",
                summary.generatedTokens, summary.decodeTokensPerSecond, summary.reason.rawValue
            ).utf8))
    return summary
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text after a prompt (as a user turn of the model's chat format unless --raw)."
    )

    @OptionGroup var model: ModelOptions
    @OptionGroup var adapter: AdapterOptions
    @Option(help: "The prompt.") var prompt: String
    @Option(help: "System prompt (chat format only).") var system: String?
    @Flag(help: "Use the prompt as is, without the chat format.") var raw = false
    @OptionGroup var sampling: SamplingOptions

    func run() throws {
        try reportingErrors {
            let loaded = try model.load(adapter: adapter.adapter)
            let ids: [Int32]
            if raw || loaded.chatTemplate == nil {
                ids = loaded.tokenizer.encode(prompt, parseSpecial: true, addBOS: nil)
            } else {
                ids = loaded.encodeChat((system.map { [ChatMessage.system($0)] } ?? []) + [.user(prompt)])
            }
            _ = try streamGeneration(Generator(model: loaded.model, tokenizer: loaded.tokenizer), prompt: ids, options: sampling)
        }
    }
}

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk with the model, turn by turn, in its chat format (an empty line or end of input quits)."
    )

    @OptionGroup var model: ModelOptions
    @OptionGroup var adapter: AdapterOptions
    @Option(help: "System prompt.") var system: String?
    @OptionGroup var sampling: SamplingOptions

    func run() throws {
        try reportingErrors {
            let loaded = try model.load(adapter: adapter.adapter)
            guard loaded.chatTemplate != nil else { throw ValidationError("the model has no chat template; use `lora generate --raw`") }
            let generator = Generator(model: loaded.model, tokenizer: loaded.tokenizer)
            // one cache for the conversation: each turn computes only what the last one did not
            let cache = loaded.model.makeCache()
            var messages = system.map { [ChatMessage.system($0)] } ?? []
            while true {
                FileHandle.standardError.write(Data("> ".utf8))
                guard let line = readLine(), !line.isEmpty else { break }
                messages.append(.user(line))
                let summary = try streamGeneration(generator, prompt: loaded.encodeChat(messages), options: sampling, cache: cache)
                messages.append(.assistant(summary.text))
            }
        }
    }
}
