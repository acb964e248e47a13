import ArgumentParser
import Evaluation
import Foundation
import LoRACore

struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "The whole loop in one run: evaluate the base, fine-tune, evaluate the adapter and every checkpoint, write the report.",
        discussion: """
            The config is a JSON object:
              {"model": PATH (default $SWIFT_LORA_MODEL), "precision": "int8" | "q4" | "f32",
               "train": {"data": FILE, OPTION: VALUE, …}   (finetune's options by name, e.g. "rank": 16, "lr": 0.001,
                                                            "eval-data": FILE, "pack": true, "targets": "q,v"),
               "evaluations": [{"kind": "overrefusal", "data": FILE, "limit": 50, "classifier": "xstest",
                                "generation": {"max_tokens": 128, "system_prompt": "…"}}, {"kind": "mc", "data": FILE}, …],
               "checkpoints": true}   (evaluate every checkpoint too)
            Writes <out>/train (the fine-tune), <out>/<name>.json per evaluation and the report. Running it again \
            resumes: finished evaluations are read back, training continues from its newest checkpoint. \
            In Swift: `Experiment.load(config:)` and `Experiment.run(model:output:)`.
            """
    )

    @Option(help: "The experiment's JSON config.") var config: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Threads (default: $SWIFT_LORA_THREADS or the core count).") var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        try inLaunchedJob { group in try run(in: group) }
    }

    func run(in group: ProcessGroup) throws {
        try reportingErrors {
            let experiment = try Experiment.load(config: config)
            if let threads { KernelRuntime.threads = threads }
            let model = try loadModel(path: try modelPath(experiment.model), precision: experiment.precision)
            let training = ProgressLine("training")
            let evaluations = EvaluationProgress()
            let outcome = try stoppingOnInterrupt { flag in
                try experiment.run(model: model, output: out, group: group, shouldStop: flag.get) { event in
                    switch event {
                    case .trainingPlanned(let trainer, let train, let heldOut): printPlan(trainer, train: train, heldOut: heldOut)
                    case .training(let event): trainingProgress(training)(event)
                    case .evaluating(let name, let label, let progress): evaluations.update(name: name, label: label, progress)
                    case .evaluated(let results): print(EvalCommand.summaryLines(results).joined(separator: "\n"))
                    }
                }
            }
            guard case .finished(let report) = outcome else {
                FileHandle.standardError.write(Data("interrupted: run the same command again to resume\n".utf8))
                throw ExitCode(130)
            }
            print(report.markdown())
            FileHandle.standardError.write(Data("report: \(out)/report.md, \(out)/report.html\n".utf8))
        }
    }
}
