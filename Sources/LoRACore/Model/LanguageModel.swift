import Foundation

/// A model ready to use: weights, tokenizer and chat format, loaded from one checkpoint.
public struct LanguageModel: Sendable {
    public let model: LlamaModel
    public let tokenizer: any Tokenizer
    public let chatTemplate: ChatTemplate?
    /// What was loaded, for reports.
    public let summary: CheckpointSummary

    /// Loads a GGUF file (a Hugging Face checkpoint folder arrives with the safetensors reader).
    public static func load(path: String, precision: WeightPrecision = .int8,
                            progress: ((WorkProgress) -> Void)? = nil) throws(LoRAError) -> LanguageModel {
        let gguf = try GGUFFile(path: path)
        let tokenizer = try makeTokenizer(gguf: gguf)
        let model = try LlamaModel(gguf: gguf, precision: precision, progress: progress)
        guard tokenizer.vocabularySize <= model.config.vocabSize else {
            throw .invalidTokenizer(file: path, problem: "\(tokenizer.vocabularySize) tokens for a model with \(model.config.vocabSize) embeddings")
        }
        let template = gguf["tokenizer.chat_template"]?.stringValue.flatMap(ChatTemplate.init(jinja:))
        return LanguageModel(model: model, tokenizer: tokenizer, chatTemplate: template,
                             summary: CheckpointSummary(gguf: gguf, model: model, precision: precision))
    }

    /// Ids of a conversation rendered with the model's chat format (plain concatenation of
    /// the contents for a model without one).
    public func encodeChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> [Int32] {
        guard let chatTemplate else {
            return tokenizer.encode(messages.map(\.content).joined(separator: "\n"), parseSpecial: false, addBOS: nil)
        }
        let bos = tokenizer.bosTokenID.flatMap(tokenizer.token) ?? ""
        let eos = tokenizer.eosTokenID.flatMap(tokenizer.token) ?? ""
        let text = chatTemplate.render(messages, addGenerationPrompt: addGenerationPrompt, bos: bos, eos: eos)
        // templates that write BOS themselves must not get a second one from the tokenizer
        let writesBOS = !bos.isEmpty && text.hasPrefix(bos)
        return tokenizer.encode(text, parseSpecial: true, addBOS: writesBOS ? false : nil)
    }
}

/// What a checkpoint held and what the loaded model takes.
public struct CheckpointSummary: Sendable, CustomStringConvertible {
    public let path: String
    public let format: String
    public let fileBytes: Int
    /// Tensors per stored type, e.g. ["Q4_1": 210, "F32": 61, "Q8_0": 1].
    public let storedTypes: [String: Int]
    public let parameters: Int
    public let precision: WeightPrecision
    public let modelBytes: Int

    init(gguf: GGUFFile, model: LlamaModel, precision: WeightPrecision) {
        path = gguf.path
        format = "GGUF v\(gguf.version)"
        fileBytes = gguf.file.bytes.count
        storedTypes = Dictionary(gguf.tensors.map { ($0.type?.rawValue ?? "type \($0.typeID)", 1) }, uniquingKeysWith: +)
        parameters = model.parameterCount
        self.precision = precision
        modelBytes = model.byteCount
    }

    public var description: String {
        let types = storedTypes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
        return "\(path): \(format), \(String(format: "%.1f", Double(fileBytes) / 1_048_576)) MiB (\(types)); "
            + "\(String(format: "%.1f", Double(parameters) / 1e6))M parameters, \(precision.rawValue) weights "
            + "\(String(format: "%.1f", Double(modelBytes) / 1_048_576)) MiB in memory"
    }
}
