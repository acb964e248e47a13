import CKernels
import Foundation

/// A model ready to use: weights, tokenizer and chat format, loaded from one checkpoint.
public struct LanguageModel: Sendable {
    public let model: LlamaModel
    public let tokenizer: any Tokenizer
    public let chatTemplate: ChatTemplate?
    /// What was loaded, for reports.
    public let summary: CheckpointSummary

    /// Loads a GGUF file, or a Hugging Face checkpoint folder (config.json, safetensors
    /// weights, tokenizer.json or tokenizer.model, tokenizer_config.json).
    public static func load(
        path: String, precision: WeightPrecision = .int8,
        progress: ((WorkProgress) -> Void)? = nil
    ) throws(LoRAError) -> LanguageModel {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return try loadHuggingFace(folder: path, precision: precision, progress: progress)
        }
        let gguf = try GGUFFile(path: path)
        let tokenizer = try makeTokenizer(gguf: gguf)
        let model = try LlamaModel(gguf: gguf, precision: precision, progress: progress)
        let template = gguf["tokenizer.chat_template"]?.stringValue.flatMap(ChatTemplate.init(jinja:))
        let summary = CheckpointSummary(
            path: path, format: "GGUF v\(gguf.version)", fileBytes: gguf.file.bytes.count,
            storedTypes: Dictionary(
                gguf.tensors.map { ($0.type?.rawValue ?? "type \($0.typeID)", 1) },
                uniquingKeysWith: +),
            model: model, precision: precision)
        return try LanguageModel(model: model, tokenizer: tokenizer, chatTemplate: template, summary: summary)
    }

    static func loadHuggingFace(
        folder: String, precision: WeightPrecision,
        progress: ((WorkProgress) -> Void)?
    ) throws(LoRAError) -> LanguageModel {
        let config = try LlamaConfig(huggingFaceConfig: "\(folder)/config.json")
        // the tokenizer first: a folder without one fails before the long part
        let (tokenizer, template) = try loadHuggingFaceTokenizer(folder: folder)
        let tensors = try SafetensorsCheckpoint(folder: folder)
        // Hugging Face keeps Q/K rows in rotate_half order
        let model = try LlamaModel(
            config: config, tensors: tensors, names: .huggingFace, ropeLayout: .halves,
            ropeFrequencies: config.ropeFrequencies(), precision: precision, progress: progress)
        let summary = CheckpointSummary(
            path: folder, format: "safetensors", fileBytes: tensors.byteCount,
            storedTypes: tensors.storedTypes, model: model, precision: precision)
        return try LanguageModel(model: model, tokenizer: tokenizer, chatTemplate: template, summary: summary)
    }

    init(model: LlamaModel, tokenizer: any Tokenizer, chatTemplate: ChatTemplate?, summary: CheckpointSummary) throws(LoRAError) {
        defer { ck_release_free_heap() }
        guard tokenizer.vocabularySize <= model.config.vocabSize else {
            throw .invalidTokenizer(
                file: summary.path, problem: "\(tokenizer.vocabularySize) tokens for a model with \(model.config.vocabSize) embeddings")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.chatTemplate = chatTemplate
        self.summary = summary
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
    /// The block type each matrix was held in, by stored type.
    public let conversions: WeightConversions
    public let modelBytes: Int

    init(path: String, format: String, fileBytes: Int, storedTypes: [String: Int], model: LlamaModel, precision: WeightPrecision) {
        self.path = path
        self.format = format
        self.fileBytes = fileBytes
        self.storedTypes = storedTypes
        parameters = model.parameterCount
        self.precision = precision
        conversions = model.conversions
        modelBytes = model.byteCount
    }

    public var description: String {
        let types = storedTypes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
        return "\(path): \(format), \(String(format: "%.1f", Double(fileBytes) / 1_048_576)) MiB (\(types)); "
            + "\(String(format: "%.1f", Double(parameters) / 1e6))M parameters, \(precision.rawValue) weights "
            + "\(String(format: "%.1f", Double(modelBytes) / 1_048_576)) MiB in memory (\(conversions))"
    }
}
