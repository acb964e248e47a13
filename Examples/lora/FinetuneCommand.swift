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
    @Option(help: "Projections to adapt, comma-separated.") var targets = LoRAConfiguration.allTargets.map {
        $0.replacingOccurrences(of: "_proj", with: "")
    }.joined(separator: ",")
    @Option(help: "Layers to adapt, comma-separated indices (default: all).") var layers: String?

    @Option(help: "Peak learning rate.") var lr: Float = 2e-4
    @Option(help: "Learning-rate schedule after the warm-up.") var schedule = LearningRateSchedule.Shape.constant
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
    @Option(help: "Recompute layers in the backward pass: auto (when keeping activations exceeds --memory-budget), always or never.")
    var recompute = RecomputeChoice.auto
    @Option(
        help: ArgumentHelp(
            "How the backward pass reads the frozen weights: direct (the forward blocks), copy (int8 only: transposed copies, "
                + "faster, more memory) or exact (f32); default: copy when it fits --memory-budget.")
    )
    var backwardData: BackwardDataMode?
    @Option(help: "GiB the run may take: beyond it layers are recomputed and no transposed copies are built (default: 3/4 of the RAM).")
    var memoryBudget: Double?
    @Flag(help: "Print the plan (data, steps, memory) and exit without training.") var dryRun = false
    @Flag(help: "With --dry-run: the memory plan as one JSON object on standard output (total_bytes: the run's peak).")
    var json = false

    func validate() throws {
        if evalData != nil && evalSplit != nil { throw ValidationError("give --eval-data or --eval-split, not both") }
        if let layers, layers.split(separator: ",").contains(where: { Int($0) == nil }) {
            throw ValidationError("--layers: \"\(layers)\" is not a comma-separated list of layer indices")
        }
        if let memoryBudget, !(memoryBudget > 0) { throw ValidationError("--memory-budget must be positive") }
        if json && !dryRun { throw ValidationError("--json goes with --dry-run") }
    }

    /// The fine-tune the flags describe.
    var job: TrainingJob {
        var settings = TrainingSettings()
        let targetNames = targets.split(separator: ",").map(LoRAConfiguration.targetName)
        settings.lora = LoRAConfiguration(
            rank: rank, alpha: alpha, dropout: dropout, rsLoRA: rslora, targets: targetNames,
            layers: layers.map { $0.split(separator: ",").compactMap { Int($0) } })
        settings.optimizer = AdamW.Settings(weightDecay: weightDecay, clipNorm: clip > 0 ? clip : nil)
        settings.learningRate = lr
        settings.schedule = schedule
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
        settings.recompute = recompute.setting
        settings.backwardData = backwardData
        if let memoryBudget { settings.memoryBudget = Int(memoryBudget * 1_073_741_824) }
        var job = TrainingJob(data: data, settings: settings)
        job.heldOutData = evalData
        job.heldOutFraction = evalSplit
        job.trainOnPrompt = trainOnPrompt
        return job
    }

    func run() throws {
        try inLaunchedJob { group in try run(in: group) }
    }

    func run(in group: ProcessGroup) throws {
        try reportingErrors {
            // a run that cannot fit stops before the weights are read
            let job = self.job
            let projected = try TrainingMemory(
                checkpoint: try modelOptions.path, settings: job.settings, precision: modelOptions.weightPrecision,
                processes: group.size)
            let plan = projected.plan(job.settings)
            let ram = Int(ProcessInfo.processInfo.physicalMemory)
            if plan.totalBytes > ram {
                throw ValidationError(
                    String(
                        format: "the run needs %.1f GiB (base %.1f GiB, activations %.1f GiB) but this machine has %.1f GiB: "
                            + "try --recompute always, --precision q4, or a smaller --batch or --seq-len",
                        Double(plan.totalBytes) / 1_073_741_824, Double(projected.baseWeights) / 1_073_741_824,
                        Double(plan.recompute ? projected.activationsRecomputed : projected.activationsKept) / 1_073_741_824,
                        Double(ram) / 1_073_741_824))
            }
            let lm = try modelOptions.load()
            let (trainer, train, heldOut) = try job.makeTrainer(model: lm, output: out, group: group)
            printPlan(trainer, train: train, heldOut: heldOut)
            if json { print(trainer.memoryPlan.json) }
            if dryRun { return }
            try runTraining(trainer, resume: resume)
        }
    }
}

/// The plan of a fine-tune on standard error: data, steps, adapter, memory.
func printPlan(_ trainer: LoRATrainer, train: TrainingDataset, heldOut: TrainingDataset?) {
    let learned = train.learnedTokenCount
    let tokens = train.tokenCount
    let s = trainer.settings
    let masked = String(format: "%.1f", 100 * Double(tokens - learned) / Double(max(tokens, 1)))
    var lines = [
        "data: \(train.examples.count) examples, \(tokens) tokens, \(learned) learned (\(masked)% masked)",
        "plan: \(trainer.plan.totalSteps) steps of \(s.batchSize) sequences × \(s.gradientAccumulation) micro-batches "
            + "(\(trainer.plan.microBatchesPerEpoch) micro-batches an epoch), seq-len \(s.sequenceLength)\(s.pack ? ", packed" : "")",
        "adapter: rank \(s.lora.rank), alpha \(s.lora.alpha), \(s.lora.targets.joined(separator: ",")), "
            + "\(trainer.memory.adapterParameters) parameters",
    ]
    if let heldOut { lines.append("held out: \(heldOut.examples.count) examples, \(heldOut.learnedTokenCount) learned tokens") }
    lines.append("memory (batch \(s.batchSize) × \(s.sequenceLength) tokens):\n" + trainer.memory.report(trainer.memoryPlan))
    FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
}

/// A progress line for a trainer's events.
func trainingProgress(_ progress: ProgressLine) -> (TrainingEvent) -> Void {
    { event in
        switch event {
        case .resumed(let step, let checkpoint):
            FileHandle.standardError.write(Data("resumed from \(checkpoint) at step \(step)\n".utf8))
        case .step(let report, let total):
            let eval = report.evalLoss.map { String(format: ", eval loss %.4f", $0) } ?? ""
            progress.update(
                WorkProgress(completed: report.step, total: total, unit: "steps"),
                detail: String(format: "loss %.4f%@, lr %.2e, %.0f tok/s", report.loss, eval, report.lr, report.tokensPerSecond))
        case .checkpoint(_, let folder):
            progress.note("checkpoint \(folder)")
        }
    }
}

/// An interrupt flag that Ctrl-C sets (the work under way finishes, then stops cleanly)
/// while `body` runs.
func stoppingOnInterrupt<T>(_ body: (InterruptFlag) throws -> T) rethrows -> T {
    let interrupted = InterruptFlag()
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    source.setEventHandler { interrupted.set() }
    source.resume()
    defer {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
    return try body(interrupted)
}

extension FinetuneCommand {
    /// Trains with a progress line; Ctrl-C finishes the step under way, writes a checkpoint
    /// and exits 130.
    func runTraining(_ trainer: LoRATrainer, resume: Bool) throws {
        let progress = ProgressLine("training")
        let interrupted = try stoppingOnInterrupt { flag in
            try trainer.run(resume: resume, shouldStop: flag.get, onEvent: trainingProgress(progress))
            return flag.get()
        }
        if interrupted {
            progress.finish("interrupted; --resume continues")
            throw ExitCode(130)
        }
        progress.finish("adapter written to \(out)")
        guard trainer.group.isLeader else { return } // rank 0 wrote the log
        let log = try trainer.log()
        if let first = log.first, let last = log.last {
            print(
                String(
                    format: "{\"first_loss\":%.6f,\"last_loss\":%.6f,\"eval_loss\":%@,\"steps\":%d}", first.loss, last.loss,
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
