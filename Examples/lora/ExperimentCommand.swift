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
              {"model": PATH (default $SWIFT_LORA_MODEL), "f32": false,
               "train": {"data": FILE, OPTION: VALUE, …}   (finetune's options by name, e.g. "rank": 16, "lr": 0.001,
                                                            "eval-data": FILE, "pack": true),
               "evaluations": [{"kind": "overrefusal", "data": FILE, "limit": 50, "classifier": "xstest",
                                "generation": {"max_tokens": 128, "system_prompt": "…"}}, {"kind": "mc", "data": FILE}, …],
               "checkpoints": true}   (evaluate every checkpoint too)
            Writes <out>/train (the fine-tune), <out>/<name>.json per evaluation and the report. Running it again \
            resumes: finished evaluations are read back, training continues from its newest checkpoint.
            """
    )

    @Option(help: "The experiment's JSON config.") var config: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Threads (default: $SWIFT_LORA_THREADS or the core count).") var threads: Int?

    struct Config: Decodable {
        let model: String?
        let f32: Bool?
        let train: [String: JSONValue]
        let evaluations: [EvaluationOptions]
        let checkpoints: Bool?
    }

    /// A config value for one finetune option.
    enum JSONValue: Decodable {
        case flag(Bool), text(String)

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let value = try? c.decode(Bool.self) { self = .flag(value) }
            else if let value = try? c.decode(Int.self) { self = .text("\(value)") }
            else if let value = try? c.decode(Double.self) { self = .text("\(value)") }
            else { self = .text(try c.decode(String.self)) }
        }
    }

    func run() throws {
        try reportingErrors {
            guard let data = FileManager.default.contents(atPath: config) else { throw ValidationError("\(config): cannot read") }
            let experiment: Config
            do { experiment = try JSONDecoder().decode(Config.self, from: data) } catch {
                throw ValidationError("\(config): not an experiment config: \(error)")
            }
            guard !experiment.evaluations.isEmpty else { throw ValidationError("\(config): no evaluations") }
            // the trainer's options as finetune takes them, so both accept the same things
            var arguments = ["--out", "\(out)/train"]
            for (key, value) in experiment.train.sorted(by: { $0.key < $1.key }) {
                let option = "--" + key.replacingOccurrences(of: "_", with: "-")
                switch value {
                case .flag(true): arguments.append(option)
                case .flag(false): break
                case .text(let text): arguments += [option, text]
                }
            }
            if let model = experiment.model { arguments += ["--model", model] }
            if experiment.f32 == true { arguments.append("--f32") }
            if let threads { arguments += ["--threads", "\(threads)"] }
            if FileManager.default.fileExists(atPath: "\(out)/train") { arguments.append("--resume") }
            let finetune: FinetuneCommand
            do { finetune = try FinetuneCommand.parse(arguments) } catch {
                throw ValidationError("\(config): train: \(FinetuneCommand.message(for: error))")
            }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let model = try finetune.modelOptions.load()

            // 1. the base model, every evaluation (resumed when already there)
            for options in experiment.evaluations { try check(evaluate(options, model: model, adapters: [], out: out)) }
            // 2. the fine-tune (continued from its newest checkpoint)
            if let trainer = try finetune.prepare(model) { try finetune.runTraining(trainer) }
            model.model.detachAdapters()
            // 3. every checkpoint and the final adapter
            var adapters: [EvaluationRunner.Adapter] = []
            let steps = ((try? FileManager.default.contentsOfDirectory(atPath: "\(out)/train")) ?? [])
                .compactMap { $0.hasPrefix("checkpoint-") ? Int($0.dropFirst("checkpoint-".count)) : nil }.sorted()
            if experiment.checkpoints ?? true {
                adapters = steps.dropLast().map { EvaluationRunner.Adapter(folder: "\(out)/train/checkpoint-\($0)") }
            }
            adapters.append(EvaluationRunner.Adapter(label: "adapter", folder: "\(out)/train", step: steps.last))
            for options in experiment.evaluations {
                let results = try evaluate(options, model: model, adapters: adapters, out: out)
                try check(results)
                print(EvalCommand.summaryLines(results).joined(separator: "\n"))
            }
            let report = try ExperimentReport.load(folder: out)
            try report.write(to: out)
            print(report.markdown())
            FileHandle.standardError.write(Data("report: \(out)/report.md, \(out)/report.html\n".utf8))
        }
    }

    /// Stops the experiment (resumable) when an evaluation was interrupted.
    func check(_ results: EvaluationResults) throws {
        if results.runs.contains(where: { !$0.complete }) {
            FileHandle.standardError.write(Data("interrupted: run the same command again to resume\n".utf8))
            throw ExitCode(130)
        }
    }
}
