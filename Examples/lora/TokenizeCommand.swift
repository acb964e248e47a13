import ArgumentParser
import Foundation
import LoRACore

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print a text's tokens; the last line is the ids as a JSON array (BOS only if the model asks for it)."
    )

    @Option(help: "Model: a GGUF file or a Hugging Face folder (default: $SWIFT_LORA_MODEL).") var model: String?
    @Option(help: "The text.") var text: String
    @Flag(help: "Tokenize control-token text (like <|im_start|>) as plain text.") var noParseSpecial = false

    func run() throws {
        try reportingErrors {
            let path = try modelPath(model)
            let tokenizer = try isFolder(path) ? makeTokenizer(huggingFaceFolder: path) : makeTokenizer(gguf: GGUFFile(path: path))
            let ids = tokenizer.encode(text, parseSpecial: !noParseSpecial, addBOS: nil)
            for id in ids { print("\(id)\t\(tokenizer.token(id) ?? "?")") }
            print(jsonArray(ids))
        }
    }
}

struct LogprobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logprobs",
        abstract: "Score a text: the last line is {\"ids\":[...],\"logprobs\":[...]}, logprobs[i] = log p(ids[i+1] | ids[0...i])."
    )

    @OptionGroup var model: ModelOptions
    @OptionGroup var adapter: AdapterOptions
    @Option(help: "The text.") var text: String

    func run() throws {
        try reportingErrors {
            let loaded = try model.load(adapter: adapter.adapter)
            let ids = loaded.tokenizer.encode(text, parseSpecial: true, addBOS: nil)
            guard !ids.isEmpty else { throw ValidationError("the text has no tokens") }
            guard ids.count <= loaded.model.config.maxPositionEmbeddings else {
                throw ValidationError("\(ids.count) tokens exceed the model's context of \(loaded.model.config.maxPositionEmbeddings)")
            }
            let logprobs = loaded.model.tokenLogProbabilities(ids)
            print("{\"ids\":\(jsonArray(ids)),\"logprobs\":\(jsonArray(logprobs))}")
        }
    }
}
