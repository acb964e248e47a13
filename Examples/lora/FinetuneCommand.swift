import ArgumentParser
import Dispatch
import Foundation
import LoRACore

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a LoRA adapter on a JSONL dataset, the base weights frozen in int8 (or f32 with --f32).",
        discussion: """
            Writes into --out: the adapter in PEFT's format (adapter_model.safetensors, adapter_config.json), \
            train_log.jsonl (one line a step) and checkpoint-N folders. Ctrl-C writes a checkpoint and exits; \
            --resume continues from the newest checkpoint with exactly the result of an uninterrupted run.
            """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Training data: JSONL with {\"messages\":[…]}, {\"prompt\",\"completion\"} or {\"text\"} per line.")
    var data: String

    @Option(help: "Output folder.") var out: String

    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "LoRA alpha (scale = alpha/rank).") var alpha: Float = 16
    @Option(help: "Dropout on the adapters' input.") var dropout: Float = 0
    @Flag(help: "rsLoRA: scale = alpha/√rank.") var rslora = false
    @Option(help: "Projections to adapt, comma-separated.") var targets = LoRAConfiguration.allTargets.map { $0.replacingOccurrences(of: "_proj", with: "") }.joined(separator: ",")
    @Option(help: "Layers to adapt, comma-separated indices (default: all).") var layers: String?

    @Option(help: "Peak learning rate.") var lr: Float = 2e-4
    @Option(help: "Learning-rate schedule: constant, linear or cosine (after the warm-up).") var schedule = "constant"
    @Option(help: "Warm-up steps.") var warmup = 0
    @Option(help: "AdamW weight decay.") var weightDecay: Float = 0
    @Option(help: "Global gradient-norm clipping (0: off).") var clip: Float = 1
    @Option(help: "Passes over the data (when --steps is not given).") var epochs = 1
    @Option(help: "Optimizer steps (instead of --epochs).") var steps: Int?
    @Option(help: "Sequences per micro-batch.") var batch = 4
    @Option(help: "Longest sequence in tokens; longer examples are cut.") var seqLen = 256
    @Option(help: "Micro-batches per optimizer step.") var gradAccum = 1
    @Flag(help: "Pack several examples into each sequence (they never attend to each other).") var pack = false
    @Flag(help: "Learn the prompt tokens too, not only the answers.") var trainOnPrompt = false
    @Option(help: "Held-out JSONL for the evaluation loss.") var evalData: String?
    @Option(help: "Hold out this fraction of --data instead.") var evalSplit: Double?
    @Option(help: "Held-out loss every N steps (and at the end).") var evalEvery: Int?
    @Option(help: "Random seed: adapter initialization, data order, dropout.") var seed: UInt64 = 0
    @Option(help: "Checkpoint every N steps (and at the end).") var checkpointEvery: Int?
    @Flag(help: "Continue from the newest checkpoint in --out.") var resume = false
    @Option(help: "Recompute layers in the backward pass: auto (when activations exceed --memory-budget), always or never.")
    var recompute = "auto"
    @Option(help: "GiB the activations of a micro-batch may take before layers are recomputed.") var memoryBudget: Double?
    @Flag(help: "Print the plan (data, steps, memory) and exit without training.") var dryRun = false

    func settings(config: LlamaConfig) throws -> TrainingSettings {
        var settings = TrainingSettings()
        let targetNames = targets.split(separator: ",").map { name in name.hasSuffix("_proj") ? String(name) : "\(name)_proj" }
        let layerList = try layers.map { list in
            try list.split(separator: ",").map { item in
                guard let index = Int(item) else { throw ValidationError("--layers: \"\(item)\" is not a layer index") }
                return index
            }
        }
        settings.lora = LoRAConfiguration(rank: rank, alpha: alpha, dropout: dropout, rsLoRA: rslora, targets: targetNames, layers: layerList)
        settings.optimizer = AdamW.Settings(weightDecay: weightDecay, clipNorm: clip > 0 ? clip : nil)
        settings.learningRate = lr
        guard let shape = LearningRateSchedule.Shape(rawValue: schedule) else {
            throw ValidationError("--schedule: \"\(schedule)\" is not one of constant, linear, cosine")
        }
        settings.schedule = shape
        settings.warmupSteps = warmup
        settings.steps = steps
        settings.epochs = epochs
        settings.batchSize = batch
        settings.sequenceLength = seqLen
        settings.gradientAccumulation = gradAccum
        settings.pack = pack
        settings.evalEvery = evalEvery
        settings.checkpointEvery = checkpointEvery
        settings.seed = seed
        switch recompute {
        case "auto": settings.recompute = nil
        case "always": settings.recompute = true
        case "never": settings.recompute = false
        default: throw ValidationError("--recompute: \"\(recompute)\" is not one of auto, always, never")
        }
        if let memoryBudget { settings.memoryBudget = Int(memoryBudget * 1_073_741_824) }
        try settings.validate(model: config)
        return settings
    }

    func run() throws {
        try reportingErrors {
            let lm = try modelOptions.load()
            guard let trainer = try prepare(lm) else { return }
            try runTraining(trainer)
        }
    }

    /// The trainer for `lm` with the plan printed; nil for a dry run.
    func prepare(_ lm: LanguageModel) throws -> LoRATrainer? {
        if evalData != nil && evalSplit != nil { throw ValidationError("give --eval-data or --eval-split, not both") }
        let settings = try settings(config: lm.model.config)
        var train = try TrainingDataset.load(path: data, model: lm, sequenceLength: seqLen, trainOnPrompt: trainOnPrompt)
        var heldOut = try evalData.map { try TrainingDataset.load(path: $0, model: lm, sequenceLength: seqLen, trainOnPrompt: trainOnPrompt) }
        if let evalSplit {
            guard evalSplit > 0 && evalSplit < 1, train.examples.count > 1 else {
                throw ValidationError("--eval-split needs a fraction in (0, 1) of a dataset with at least 2 examples")
            }
            (train, heldOut) = train.split(heldOut: evalSplit, seed: seed)
        }
        let trainer = try LoRATrainer(model: lm, settings: settings, train: train, heldOut: heldOut, output: out)
        printPlan(trainer, train: train, heldOut: heldOut)
        return dryRun ? nil : trainer
    }

    func printPlan(_ trainer: LoRATrainer, train: TrainingDataset, heldOut: TrainingDataset?) {
        let learned = train.learnedTokenCount, tokens = train.tokenCount
        var lines = [
            "data: \(train.examples.count) examples, \(tokens) tokens, \(learned) learned (\(String(format: "%.1f", 100 * Double(tokens - learned) / Double(max(tokens, 1))))% masked)",
            "plan: \(trainer.plan.totalSteps) steps of \(batch) sequences × \(gradAccum) micro-batches (\(trainer.plan.microBatchesPerEpoch) micro-batches an epoch), seq-len \(seqLen)\(pack ? ", packed" : "")",
            "adapter: rank \(rank), alpha \(alpha), \(trainer.settings.lora.targets.joined(separator: ",")), \(trainer.memory.adapterParameters) parameters",
        ]
        if let heldOut { lines.append("held out: \(heldOut.examples.count) examples, \(heldOut.learnedTokenCount) learned tokens") }
        lines.append("memory (batch \(batch) × \(seqLen) tokens):\n" + trainer.memory.report(recompute: trainer.recompute))
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    func runTraining(_ trainer: LoRATrainer) throws {
        // Ctrl-C: finish the step under way, write a checkpoint, exit
        let interrupted = InterruptFlag()
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { interrupted.set() }
        source.resume()
        let progress = ProgressLine("training")
        try trainer.run(resume: resume, shouldStop: interrupted.get) { event in
            switch event {
            case .resumed(let step, let checkpoint):
                FileHandle.standardError.write(Data("resumed from \(checkpoint) at step \(step)\n".utf8))
            case .step(let report, let total):
                let eval = report.evalLoss.map { String(format: ", eval loss %.4f", $0) } ?? ""
                progress.update(WorkProgress(completed: report.step, total: total, unit: "steps"),
                                detail: String(format: "loss %.4f%@, lr %.2e, %.0f tok/s", report.loss, eval, report.lr, report.tokensPerSecond))
            case .checkpoint(_, let folder):
                progress.note("checkpoint \(folder)")
            }
        }
        if interrupted.get() {
            progress.finish("interrupted; --resume continues")
            throw ExitCode(130)
        }
        progress.finish("adapter written to \(out)")
        let log = trainer.log
        if let first = log.first, let last = log.last {
            print(String(format: "{\"first_loss\":%.6f,\"last_loss\":%.6f,\"eval_loss\":%@,\"steps\":%d}", first.loss, last.loss,
                         last.evalLoss.map { String(format: "%.6f", $0) } ?? "null", last.step))
        }
    }
}

/// A flag a signal handler sets and the training loop reads.
final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    func get() -> Bool { lock.withLock { value } }
}
