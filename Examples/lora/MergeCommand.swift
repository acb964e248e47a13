import ArgumentParser
import Foundation
import LoRACore

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract:
            "Fold a PEFT adapter into a model's weights: a model that runs without the adapter (llama.cpp, transformers, this library).",
        discussion: """
            A GGUF file gives a GGUF file: every metadata entry (tokenizer, chat template) copied verbatim, untouched \
            tensors byte for byte, each adapted weight dequantized, merged (W + scale·B·A) and stored as --type \
            (f16, f32 or q8_0; default f16). A Hugging Face folder gives a folder: the same shards and index, config \
            and tokenizer files copied, merged weights stored as --type (auto: each weight's own type; f32, f16, bf16).
            """
    )

    @Option(help: "The base model: a GGUF file or a Hugging Face checkpoint folder.") var model: String
    @Option(help: "The PEFT adapter folder.") var adapter: String
    @Option(help: "The merged GGUF file or folder to write.") var out: String
    @Option(help: "Storage of the merged weights (GGUF: f16, f32, q8_0, q4_0; folder: auto, f32, f16, bf16).") var type: String?

    // merging keeps the source's format; converting between formats is llama.cpp's converter's job
    func validate() throws {
        let folder = isFolder(model)
        if folder == out.hasSuffix(".gguf") {
            throw ValidationError(
                folder
                    ? "--out: a Hugging Face folder merges into a folder "
                        + "(then llama.cpp's convert_hf_to_gguf.py makes a GGUF of it), not \(out)"
                    : "--out: a GGUF model merges into a file ending in .gguf, not \(out)")
        }
        if let type, folder ? MergedModel.HuggingFaceType(rawValue: type) == nil : GGUFWriter.TensorType(rawValue: type) == nil {
            throw ValidationError(
                "--type: \"\(type)\" is not one of \(folder ? "auto, f32, f16, bf16 for a folder" : "f16, f32, q8_0, q4_0 for a GGUF file")"
            )
        }
    }

    func run() throws {
        try reportingErrors {
            let peft = try PEFTAdapter(folder: adapter)
            let progress = ProgressLine("merging")
            if isFolder(model) {
                let type = MergedModel.HuggingFaceType(rawValue: type ?? "auto")! // checked in validate()
                try MergedModel.writeHuggingFace(folder: model, adapter: peft, to: out, type: type, progress: progress.update)
                progress.finish("\(out): \(peft.modules.count) weights merged (\(type.rawValue))")
            } else {
                let type = GGUFWriter.TensorType(rawValue: type ?? "f16")! // checked in validate()
                try MergedModel.writeGGUF(model: try GGUFFile(path: model), adapter: peft, to: out, type: type, progress: progress.update)
                progress.finish("\(out): \(peft.modules.count) weights merged as \(type.rawValue)")
            }
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
    @Option(help: "Storage of lora_a and lora_b.") var type = StoredType.f32

    /// What a GGUF adapter stores (lora_b's rows are rank-long: too short for Q8_0 blocks).
    enum StoredType: String, ExpressibleByArgument, CaseIterable {
        case f32, f16

        var tensorType: GGUFWriter.TensorType { self == .f32 ? .f32 : .f16 }
    }

    func run() throws {
        try reportingErrors {
            let peft = try PEFTAdapter(folder: adapter)
            try peft.writeGGUF(to: out, for: try GGUFFile(path: model), type: type.tensorType)
            FileHandle.standardError.write(Data("\(out): \(peft.modules.count) LoRA pairs, alpha \(peft.alpha)\n".utf8))
        }
    }
}
