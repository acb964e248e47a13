import ArgumentParser
import Foundation
import LoRACore

extension SyntheticModel.Recipe: ExpressibleByArgument {}

struct SynthesizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synthesize",
        abstract: "Write a random-weight GGUF of any Llama config.json, to try memory and speed before downloading a model.")

    @Option(help: "A Hugging Face config.json.") var config: String
    @Option(help: "Block types: q4_0, q4_k_m (llama.cpp's mix of Q4_K and Q6_K) or q8_0.") var type: SyntheticModel.Recipe
    @Option(help: "The GGUF file to write.") var out: String
    @Option(help: "Random seed of the weights.") var seed: UInt64 = 0

    func run() throws {
        try reportingErrors {
            let llama = try LlamaConfig(huggingFaceConfig: config)
            let progress = ProgressLine("writing")
            try SyntheticModel.write(config: llama, recipe: type, to: out, seed: seed, progress: progress.update)
            let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
            progress.finish(
                String(
                    format: "%@: %d layers, hidden %d, %@, %.1f MiB", out, llama.numHiddenLayers, llama.hiddenSize, type.rawValue,
                    Double(bytes) / 1_048_576))
        }
    }
}
