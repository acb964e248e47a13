import Foundation

/// One tokenized example: its ids and which of them the loss learns.
public struct TrainingExample: Sendable, Equatable {
    public let tokens: [Int32]
    /// Per token: whether predicting it counts in the loss (assistant or completion tokens).
    public let learned: [Bool]
    /// The line of the file it came from (from 1).
    public let line: Int

    /// Next-token targets: tokens[t + 1] where that token is learned, else -1.
    public var targets: [Int32] {
        tokens.indices.map { t in t + 1 < tokens.count && learned[t + 1] ? tokens[t + 1] : -1 }
    }
}

/// A JSONL training set, one example a line, in any of the usual shapes:
/// `{"messages":[{"role":"system|user|assistant","content":"…"},…]}` (chat, multi-turn),
/// `{"prompt":"…","completion":"…"}` (one user turn and its answer) and `{"text":"…"}`
/// (plain text, learned whole). Chat shapes go through the model's chat format and the loss
/// counts assistant tokens only (with their end-of-turn), unless `trainOnPrompt`.
public struct TrainingDataset: Sendable {
    public let file: String
    public let examples: [TrainingExample]

    public init(file: String, examples: [TrainingExample]) {
        self.file = file
        self.examples = examples
    }

    /// Reads and tokenizes the whole file; any bad line stops it with the file and line
    /// number, before any training.
    public static func load(path: String, model: LanguageModel, sequenceLength: Int, trainOnPrompt: Bool = false)
        throws(LoRAError) -> TrainingDataset
    {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadableFile(file: path, reason: "no such file, or it cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw .malformedFile(file: path, problem: "not UTF-8 text") }
        var examples: [TrainingExample] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { continue }
            func fail(_ problem: String) -> LoRAError { .invalidExample(file: path, line: index + 1, problem: problem) }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
                throw fail("not a JSON object")
            }
            let (tokens, learned) = try tokenize(object, model: model, trainOnPrompt: trainOnPrompt, fail: fail)
            guard let firstLearned = learned.firstIndex(of: true) else { throw fail("nothing to learn: no assistant or completion tokens") }
            guard firstLearned < sequenceLength else {
                throw fail("nothing left to learn within sequenceLength \(sequenceLength) (the prompt takes \(firstLearned) tokens)")
            }
            examples.append(
                TrainingExample(
                    tokens: Array(tokens.prefix(sequenceLength)), learned: Array(learned.prefix(sequenceLength)),
                    line: index + 1))
        }
        guard !examples.isEmpty else { throw .malformedFile(file: path, problem: "no examples") }
        return TrainingDataset(file: path, examples: examples)
    }

    static func tokenize(_ object: [String: Any], model: LanguageModel, trainOnPrompt: Bool, fail: (String) -> LoRAError)
        throws(LoRAError) -> (tokens: [Int32], learned: [Bool])
    {
        if let text = object["text"] {
            guard let text = text as? String, !text.isEmpty else { throw fail("\"text\" is not a non-empty string") }
            let tokens = model.tokenizer.encode(text, parseSpecial: false, addBOS: nil)
            return (tokens, tokens.indices.map { $0 > 0 })
        }
        let messages: [ChatMessage]
        if let list = object["messages"] {
            guard let list = list as? [Any], !list.isEmpty else { throw fail("\"messages\" is not a non-empty list") }
            var parsed: [ChatMessage] = []
            for (number, item) in list.enumerated() {
                guard let item = item as? [String: Any], let role = item["role"] as? String, let content = item["content"] as? String else {
                    throw fail("message \(number + 1) lacks a string \"role\" or \"content\"")
                }
                guard let known = ChatMessage.Role(rawValue: role) else {
                    throw fail("message \(number + 1) has the unknown role \"\(role)\" (system, user or assistant)")
                }
                parsed.append(ChatMessage(role: known, content: content))
            }
            messages = parsed
        } else if object["prompt"] != nil || object["completion"] != nil {
            guard let prompt = object["prompt"] as? String, let completion = object["completion"] as? String else {
                throw fail("\"prompt\" and \"completion\" must both be strings")
            }
            messages = [.user(prompt), .assistant(completion)]
        } else {
            throw fail("no \"messages\", \"prompt\"/\"completion\" or \"text\" field")
        }
        let tokens = model.encodeChat(messages, addGenerationPrompt: false)
        if trainOnPrompt { return (tokens, tokens.indices.map { $0 > 0 }) }
        var learned = [Bool](repeating: false, count: tokens.count)
        for (index, message) in messages.enumerated() where message.role == .assistant {
            // the assistant's turn: what the conversation up to it adds after the generation prompt
            let prompt = model.encodeChat(Array(messages[..<index]), addGenerationPrompt: true)
            let through = model.encodeChat(Array(messages[...index]), addGenerationPrompt: false)
            guard tokens.starts(with: through) else {
                throw fail("the chat format does not render message \(index + 1) as a continuation of the ones before it")
            }
            // where the ids part (a merge may straddle the prompt's end) the answer starts
            let start = zip(prompt, through).prefix { $0 == $1 }.count
            for t in start..<through.count { learned[t] = true }
        }
        return (tokens, learned)
    }

    public var tokenCount: Int { examples.reduce(0) { $0 + $1.tokens.count } }
    public var learnedTokenCount: Int { examples.reduce(0) { $0 + $1.targets.count { $0 >= 0 } } }

    /// Splits off the last `fraction` of the examples, in an order shuffled by `seed`, as a
    /// held-out set.
    public func split(heldOut fraction: Double, seed: UInt64) -> (train: TrainingDataset, heldOut: TrainingDataset) {
        let order = Self.shuffled(examples.count, seed: seed)
        let heldOutCount = max(1, min(examples.count - 1, Int((Double(examples.count) * fraction).rounded())))
        let trainIndices = order.dropLast(heldOutCount).sorted()
        let heldOutIndices = order.suffix(heldOutCount).sorted()
        return (
            TrainingDataset(file: file, examples: trainIndices.map { examples[$0] }),
            TrainingDataset(file: file, examples: heldOutIndices.map { examples[$0] })
        )
    }

    /// 0..<count in a Fisher–Yates order drawn from `seed` (written out, not the standard
    /// library's shuffle, whose algorithm may change between releases).
    static func shuffled(_ count: Int, seed: UInt64) -> [Int] {
        var generator = SeededGenerator(seed: seed)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(generator.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }
}
