import Foundation
import LoRACore

/// The whole loop of a fine-tuning study, as the reference paper runs it: every evaluation on
/// the base model, the fine-tune, the same evaluations on each checkpoint and on the final
/// adapter, and the report. Everything lands in one output folder (`train/` for the
/// fine-tune, `<name>.json` per evaluation, `report.*`), and running it again resumes:
/// finished evaluations are read back, training continues from its newest checkpoint.
public struct Experiment: Sendable, Equatable {
    /// The model (GGUF file or Hugging Face folder); nil: the caller's default.
    public var model: String?
    public var precision: WeightPrecision = .int8
    public var training: TrainingJob
    public var evaluations: [EvaluationOptions]
    /// Evaluate every checkpoint too, not only the base and the final adapter.
    public var checkpoints = true

    public init(
        model: String? = nil, precision: WeightPrecision = .int8, training: TrainingJob, evaluations: [EvaluationOptions],
        checkpoints: Bool = true
    ) {
        self.model = model
        self.precision = precision
        self.training = training
        self.evaluations = evaluations
        self.checkpoints = checkpoints
    }

    /// What an experiment tells its caller as it goes.
    public enum Event: Sendable {
        /// The trainer is ready (its plan and memory can be shown); training follows.
        case trainingPlanned(LoRATrainer, train: TrainingDataset, heldOut: TrainingDataset?)
        case training(TrainingEvent)
        /// An evaluation's progress over one run (the base, a checkpoint, the adapter).
        case evaluating(name: String, label: String, WorkProgress)
        /// An evaluation finished for the runs of a stage (the base alone, then the adapters).
        case evaluated(EvaluationResults)
    }

    /// How a run ended: with the report, or stopped by `shouldStop` (run again to resume).
    public enum Outcome: Sendable {
        case finished(ExperimentReport)
        case interrupted
    }

    /// The fine-tune's folder in `output`.
    public static func trainingFolder(in output: String) -> String { "\(output)/train" }

    /// Runs the experiment on `model` (loaded by the caller from `self.model` at
    /// `precision`) into `output`, resuming whatever is already there; with the ranks of
    /// `group` sharing the training and the evaluations (rank 0 writes).
    public func run(
        model: LanguageModel, output: String, group: ProcessGroup = .single, shouldStop: @escaping @Sendable () -> Bool = { false },
        onEvent: @escaping (Event) -> Void = { _ in }
    ) throws(EvaluationError) -> Outcome {
        guard !evaluations.isEmpty else { throw .invalidOption(option: "evaluations", problem: "no evaluations") }
        if evaluations.contains(where: { $0.kind == .classify }) {
            throw .invalidOption(
                option: "evaluations", problem: "classify scores saved responses, not a fine-tune: run `lora eval classify`")
        }
        let trainFolder = Self.trainingFolder(in: output)
        if group.isLeader {
            do {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            } catch {
                throw .unreadableFile(file: output, reason: "cannot create the folder: \(error.localizedDescription)")
            }
        }
        var runner = EvaluationRunner(model: model, output: output)
        runner.shouldStop = shouldStop
        runner.group = group
        func evaluate(_ adapters: [EvaluationRunner.Adapter]) throws(EvaluationError) -> Bool {
            for options in evaluations {
                runner.progress = { label, progress in onEvent(.evaluating(name: options.resultsName, label: label, progress)) }
                let results = try runner.run(options, adapters: adapters)
                onEvent(.evaluated(results))
                if results.runs.contains(where: { !$0.complete }) { return false }
            }
            return true
        }
        // 1. the base model
        guard try evaluate([]) else { return .interrupted }
        // 2. the fine-tune, continued from its newest checkpoint
        do {
            let (trainer, train, heldOut) = try training.makeTrainer(model: model, output: trainFolder, group: group)
            onEvent(.trainingPlanned(trainer, train: train, heldOut: heldOut))
            try trainer.run(resume: true, shouldStop: shouldStop) { onEvent(.training($0)) }
            model.model.detachAdapters()
            // rank 0 wrote the adapter: the other ranks take its word (and its listing below)
            let trained = try group.fromLeader(FileManager.default.fileExists(atPath: "\(trainFolder)/adapter_model.safetensors"))
            if !trained { return .interrupted }
        } catch {
            model.model.detachAdapters()
            throw .model(error)
        }
        // 3. every checkpoint and the final adapter
        let saved: [CheckpointFolder]
        do { saved = try group.fromLeader(CheckpointFolder.all(in: trainFolder)) } catch { throw .model(error) }
        var adapters = checkpoints ? saved.dropLast().map { EvaluationRunner.Adapter(folder: $0.path) } : []
        adapters.append(EvaluationRunner.Adapter(label: "adapter", folder: trainFolder, step: saved.last?.step))
        guard try evaluate(adapters) else { return .interrupted }
        // rank 0 reads the results and writes the report; every rank returns it
        var report: ExperimentReport?
        if group.isLeader {
            report = try ExperimentReport.load(folder: output)
            try report!.write(to: output)
        }
        do { return .finished(try group.fromLeader(report)!) } catch { throw .model(error) }
    }
}
