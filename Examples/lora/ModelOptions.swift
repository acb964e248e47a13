import ArgumentParser
import Evaluation
import Foundation
import LoRACore

extension WeightPrecision: ExpressibleByArgument {}
extension BackwardDataMode: ExpressibleByArgument {}
extension LearningRateSchedule.Shape: ExpressibleByArgument {}
extension RecomputeChoice: ExpressibleByArgument {}
extension EvaluationKind: ExpressibleByArgument {}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model: a GGUF file or a Hugging Face checkpoint folder (default: $SWIFT_LORA_MODEL).")
    var model: String?

    @Option(
        help: ArgumentHelp(
            "How the big matrices are held: int8 blocks (default), q4 (a GGUF's own 4/6-bit blocks; "
                + "Q4_0 for safetensors) or exact f32 (reference runs).")
    )
    var precision: WeightPrecision?

    @Flag(help: "Shorthand for --precision f32.")
    var f32 = false

    @Option(help: "Threads (default: $SWIFT_LORA_THREADS or the core count).")
    var threads: Int?

    func validate() throws {
        if f32, let precision, precision != .f32 { throw ValidationError("--f32 contradicts --precision \(precision.rawValue)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    var weightPrecision: WeightPrecision { f32 ? .f32 : precision ?? .int8 }

    var path: String {
        get throws { try modelPath(model) }
    }

    /// Loads with a progress line and a one-line report on standard error, with `adapter`
    /// (a PEFT folder) attached when given.
    func load(adapter: String? = nil) throws -> LanguageModel {
        if let threads { KernelRuntime.threads = threads }
        return try loadModel(path: try path, precision: weightPrecision, adapter: adapter)
    }
}

/// `--adapter` for the commands that run one adapted model.
struct AdapterOptions: ParsableArguments {
    @Option(help: "A PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) to apply.")
    var adapter: String?
}

/// Loads a model with a progress line and a one-line report on standard error.
func loadModel(path: String, precision: WeightPrecision, adapter: String? = nil) throws -> LanguageModel {
    let progress = ProgressLine("loading")
    let loaded = try LanguageModel.load(path: path, precision: precision, progress: progress.update)
    progress.finish("\(loaded.summary)")
    if let adapter {
        let peft = try PEFTAdapter(folder: adapter)
        try loaded.model.attach(peft)
        FileHandle.standardError.write(
            Data("adapter: \(adapter), rank \(peft.rank), alpha \(peft.alpha), \(peft.modules.count) projections\n".utf8))
    }
    return loaded
}

/// The model a command works on: `--model`, else $SWIFT_LORA_MODEL.
func modelPath(_ given: String?) throws -> String {
    if let given { return given }
    if let path = ProcessInfo.processInfo.environment["SWIFT_LORA_MODEL"] { return path }
    throw ValidationError("no model: pass --model PATH or set SWIFT_LORA_MODEL (scripts/fetch-model prints the default one's path)")
}

/// The command-line flag of each library setting an error may name (`TrainingSettings`'
/// and `TrainingJob`'s property paths, `EvaluationOptions`' properties).
let settingFlags: [String: String] = [
    "lora.rank": "--rank", "lora.alpha": "--alpha", "lora.dropout": "--dropout", "lora.targets": "--targets", "lora.layers": "--layers",
    "learningRate": "--lr", "steps": "--steps", "epochs": "--epochs", "batchSize": "--batch", "sequenceLength": "--seq-len",
    "gradientAccumulation": "--grad-accum", "warmupSteps": "--warmup", "optimizer.weightDecay": "--weight-decay",
    "optimizer.clipNorm": "--clip", "evalEvery": "--eval-every", "checkpointEvery": "--checkpoint-every",
    "heldOutFraction": "--eval-split", "judge": "--judge", "evaluations": "evaluations",
]

/// Prints a LoRAError or EvaluationError as its message, settings named by their flags, and
/// exits non-zero (no stack trace for bad input).
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    func fail(_ message: String) -> ExitCode {
        errorOutput.write(Data("error: \(errorPrefix)\(message)\n".utf8))
        return ExitCode.failure
    }
    do {
        return try body()
    } catch LoRAError.invalidTrainingSetting(let setting, let problem), EvaluationError.model(
        .invalidTrainingSetting(let setting, let problem))
    {
        throw fail("\(settingFlags[setting] ?? setting): \(problem)")
    } catch EvaluationError.invalidOption(let option, let problem) {
        throw fail("\(settingFlags[option] ?? option): \(problem)")
    } catch let error as LoRAError {
        throw fail("\(error)")
    } catch let error as EvaluationError {
        throw fail("\(error)")
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
