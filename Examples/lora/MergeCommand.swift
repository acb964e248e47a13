import ArgumentParser
import Foundation
import LoRACore

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold a PEFT adapter into a GGUF model's weights: a model llama.cpp (and this library) runs without the adapter.",
        discussion: """
            Every metadata entry (tokenizer, chat template) is copied verbatim and untouched tensors byte for byte; \
            each adapted weight is dequantized, merged (W + scale·B·A) and stored as --type.
            """
    )

    @Option(help: "The base model (GGUF file).") var model: String
    @Option(help: "The PEFT adapter folder.") var adapter: String
    @Option(help: "The merged GGUF file to write.") var out: String
    @Option(help: "Storage of the merged weights: f16, f32 or q8_0.") var type = "f16"

    func run() throws {
        try reportingErrors {
            guard let type = GGUFWriter.TensorType(rawValue: type) else { throw ValidationError("--type: \"\(type)\" is not one of f16, f32, q8_0") }
            if isFolder(model) { throw ValidationError("--model: merging works on GGUF files; \(model) is a folder") }
            let source = try GGUFFile(path: model)
            let peft = try PEFTAdapter(folder: adapter)
            let progress = ProgressLine("merging")
            try MergedModel.writeGGUF(model: source, adapter: peft, to: out, type: type, progress: progress.update)
            progress.finish("\(out): \(peft.modules.count) weights merged as \(type.rawValue)")
        }
    }
}

struct ExportAdapterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-adapter",
        abstract: "Write a PEFT adapter as a GGUF LoRA adapter for a GGUF base model (llama.cpp's --lora)."
    )

    @Option(help: "The PEFT adapter folder.") var adapter: String
    @Option(help: "The GGUF base model it adapts (names, shapes and Q/K row order come from it).") var model: String
    @Option(help: "The GGUF adapter file to write.") var out: String
    @Option(help: "Storage: f32 or f16.") var type = "f32"

    func run() throws {
        try reportingErrors {
            guard let type = GGUFWriter.TensorType(rawValue: type) else { throw ValidationError("--type: \"\(type)\" is not one of f32, f16") }
            let peft = try PEFTAdapter(folder: adapter)
            try peft.writeGGUF(to: out, for: try GGUFFile(path: model), type: type)
            FileHandle.standardError.write(Data("\(out): \(peft.modules.count) LoRA pairs, alpha \(peft.alpha)\n".utf8))
        }
    }
}
