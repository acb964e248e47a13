import ArgumentParser

@main
struct Lora: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora",
        abstract: "Load Llama-family chat models, fine-tune LoRA adapters on int8 or 4-bit weights, measure the result.",
        subcommands: [
            FinetuneCommand.self, EvalCommand.self, ExperimentCommand.self, ReportCommand.self, MergeCommand.self,
            ExportAdapterCommand.self, PlanCommand.self, GenerateCommand.self, ChatCommand.self, LogprobsCommand.self, TokenizeCommand.self,
            InspectCommand.self, KernelsCommand.self, SynthesizeCommand.self, ServeCommand.self,
        ]
    )
}
