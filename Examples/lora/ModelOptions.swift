import ArgumentParser
import Evaluation
import Foundation
import LoRACore

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model: a GGUF file or a Hugging Face checkpoint folder (default: $SWIFT_LORA_MODEL).")
    var model: String?

    @Flag(help: "Keep the big matrices in exact f32 instead of int8 blocks (reference runs).")
    var f32 = false

    @Option(help: "Threads (default: $SWIFT_LORA_THREADS or the core count).")
    var threads: Int?

    @Option(help: "A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) to apply.")
    var adapter: String?

    var path: String {
        get throws { try modelPath(model) }
    }

    /// Loads with a progress line and a one-line report on standard error.
    func load() throws -> LanguageModel {
        if let threads { KernelRuntime.threads = threads }
        let progress = ProgressLine("loading")
        let loaded = try LanguageModel.load(path: try path, precision: f32 ? .f32 : .int8, progress: progress.update)
        progress.finish("\(loaded.summary)")
        if let adapter {
            let peft = try PEFTAdapter(folder: adapter)
            try loaded.model.attach(peft)
            FileHandle.standardError.write(Data("adapter: \(adapter), rank \(peft.rank), alpha \(peft.alpha), \(peft.modules.count) projections\n".utf8))
        }
        return loaded
    }
}

/// The model a command works on: `--model`, else $SWIFT_LORA_MODEL.
func modelPath(_ given: String?) throws -> String {
    if let given { return given }
    if let path = ProcessInfo.processInfo.environment["SWIFT_LORA_MODEL"] { return path }
    throw ValidationError("no model: pass --model PATH or set SWIFT_LORA_MODEL (scripts/fetch-model prints the default one's path)")
}

/// Prints a LoRAError or EvaluationError as its message and exits non-zero (no stack trace for bad input).
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as LoRAError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    } catch let error as EvaluationError {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// JSON for an array of numbers, compact.
func jsonArray<T: Numeric>(_ values: [T]) -> String {
    "[" + values.map { "\($0)" }.joined(separator: ",") + "]"
}

func isFolder(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}
