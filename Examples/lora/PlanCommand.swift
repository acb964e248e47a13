import ArgumentParser
import Foundation
import LoRACore

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Project the memory of a LoRA run from a model's config.json alone (no weights needed).")

    @Option(help: "A Hugging Face config.json.") var config: String
    @Option(help: "LoRA rank.") var rank = 16
    @Option(help: "Sequences per micro-batch.") var batch = 4
    @Option(help: "Sequence length.") var seqLen = 512

    func run() throws {
        try reportingErrors {
            let llama = try LlamaConfig(huggingFaceConfig: config)
            var settings = TrainingSettings()
            settings.lora = LoRAConfiguration(rank: rank, alpha: Float(2 * rank))
            settings.batchSize = batch
            settings.sequenceLength = seqLen
            let memory = TrainingMemory(config: llama, settings: settings)
            print(
                "\(config): \(llama.numHiddenLayers) layers, hidden \(llama.hiddenSize); "
                    + "rank \(rank), all projections, batch \(batch) × \(seqLen)")
            print(memory.report(recompute: memory.recompute(settings)))
            print(
                String(
                    format: "{\"total_kept_gib\":%.2f,\"total_recomputed_gib\":%.2f}",
                    Double(memory.total(recompute: false)) / 1_073_741_824,
                    Double(memory.total(recompute: true)) / 1_073_741_824))
        }
    }
}
