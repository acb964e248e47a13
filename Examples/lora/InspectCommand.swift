import ArgumentParser
import Foundation
import LoRACore

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model file's configuration, metadata and tensors; a bad file exits non-zero with the error."
    )

    @Option(help: "Model: a GGUF file or a Hugging Face folder (default: $SWIFT_LORA_MODEL).") var model: String?
    @Flag(help: "List every tensor.") var tensors = false

    func run() throws {
        try reportingErrors {
            let path = try modelPath(model)
            if isFolder(path) { return try inspectFolder(path) }
            let gguf = try GGUFFile(path: path)
            print("\(path): GGUF v\(gguf.version), \(gguf.metadata.count) metadata keys, \(gguf.tensors.count) tensors")
            for (key, value) in gguf.metadata { print("  \(key) = \(Self.describe(value))") }
            let config = try LlamaConfig(gguf: gguf)
            let json = try JSONEncoder.sorted.encode(config)
            print("config: \(String(decoding: json, as: UTF8.self))")
            var types: [String: (count: Int, bytes: Int)] = [:]
            for t in gguf.tensors {
                let name = t.type?.rawValue ?? "type \(t.typeID)"
                types[name, default: (0, 0)].count += 1
                types[name, default: (0, 0)].bytes += t.byteRange?.count ?? 0
                if tensors { print("  \(t.name)  \(name)  \(t.shape)  \(t.byteRange?.count ?? 0) bytes") }
            }
            for (name, stats) in types.sorted(by: { $0.key < $1.key }) {
                print("tensors \(name): \(stats.count), \(String(format: "%.1f", Double(stats.bytes) / 1_048_576)) MiB")
            }
            let tokenizer = try makeTokenizer(gguf: gguf)
            print(
                "tokenizer: \(type(of: tokenizer)), \(tokenizer.vocabularySize) tokens, "
                    + "BOS \(tokenizer.bosTokenID.map(String.init) ?? "-"), "
                    + "EOS \(tokenizer.eosTokenID.map(String.init) ?? "-"), adds BOS: \(tokenizer.addsBOS)")
            let template = gguf["tokenizer.chat_template"]?.stringValue.flatMap(ChatTemplate.init(jinja:))
            print("chat format: \(template.map { "\($0)" } ?? "none recognized")")
        }
    }

    func inspectFolder(_ path: String) throws {
        let config = try LlamaConfig(huggingFaceConfig: "\(path)/config.json")
        print("\(path): Hugging Face checkpoint")
        print("config: \(String(decoding: try JSONEncoder.sorted.encode(config), as: UTF8.self))")
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".safetensors") }.sorted()
        for name in files {
            let file = try SafetensorsFile(path: "\(path)/\(name)")
            let types = Dictionary(file.tensors.values.map { ($0.dtype, 1) }, uniquingKeysWith: +)
            print(
                "\(name): \(file.tensors.count) tensors "
                    + types.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))
            if tensors {
                for t in file.tensors.values.sorted(by: { $0.name < $1.name }) {
                    print("  \(t.name)  \(t.dtype)  \(t.shape)  \(t.byteRange.count) bytes")
                }
            }
        }
        let tokenizer = try makeTokenizer(huggingFaceFolder: path)
        print(
            "tokenizer: \(type(of: tokenizer)), \(tokenizer.vocabularySize) tokens, BOS \(tokenizer.bosTokenID.map(String.init) ?? "-"), "
                + "EOS \(tokenizer.eosTokenID.map(String.init) ?? "-"), adds BOS: \(tokenizer.addsBOS)")
    }

    static func describe(_ value: GGUFValue) -> String {
        switch value {
        case .array(let items):
            let head = items.prefix(5).map(describe).joined(separator: ", ")
            return "[\(head)\(items.count > 5 ? ", … (\(items.count) items)" : "")]"
        case .string(let s): return s.count > 80 ? "\"\(s.prefix(80))…\" (\(s.utf8.count) bytes)" : "\"\(s)\""
        case .uint(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .float(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
