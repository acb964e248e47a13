import ArgumentParser
import Foundation
import LoRACore

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Project the memory of a LoRA run from a model's config.json alone (no weights needed).")

    @Option(help: "A Hugging Face config.json.") var config: String
    @Option(help: "How the frozen base is held.") var precision = WeightPrecision.int8
    @Option(help: "LoRA rank.") var rank = 16
    @Option(help: "Sequences per micro-batch.") var batch = 4
    @Option(help: "Sequence length.") var seqLen = 512
    @Option(help: "Recompute layers in the backward pass: auto (when keeping activations exceeds --memory-budget), always or never.")
    var recompute = RecomputeChoice.auto
    @Option(
        help:
            "How the backward pass reads the frozen weights: direct, copy (int8 only) or exact; default: copy when it fits --memory-budget."
    )
    var backwardData: BackwardDataMode?
    @Option(help: "GiB the run may take: beyond it layers are recomputed and no transposed copies are built (default: 3/4 of the RAM).")
    var memoryBudget: Double?
    @Flag(help: "Print the plan as one JSON object (total_bytes: the peak the run needs, with its parts).") var json = false

    func validate() throws {
        if let memoryBudget, !(memoryBudget > 0) { throw ValidationError("--memory-budget must be positive") }
    }

    func run() throws {
        try reportingErrors {
            let llama = try LlamaConfig(huggingFaceConfig: config)
            var settings = TrainingSettings()
            settings.lora = LoRAConfiguration(rank: rank, alpha: Float(2 * rank))
            settings.batchSize = batch
            settings.sequenceLength = seqLen
            settings.recompute = recompute.setting
            settings.backwardData = backwardData
            if let memoryBudget { settings.memoryBudget = Int(memoryBudget * 1_073_741_824) }
            try settings.validate(model: llama)
            let plan = TrainingMemory(config: llama, settings: settings, precision: precision).plan(settings)
            if json { return print(plan.json) }
            print(
                "\(config): \(llama.numHiddenLayers) layers, hidden \(llama.hiddenSize); "
                    + "rank \(rank), all projections, batch \(batch) × \(seqLen), \(precision.rawValue) base")
            print(plan.parts.report(plan))
        }
    }
}
