import Foundation

/// One optimizer step, as the log records it.
public struct TrainingStepReport: Sendable, Codable, Equatable {
    public let step: Int
    public let loss: Double
    public var evalLoss: Double?
    public let gradNorm: Double
    public let lr: Float
    public let tokens: Int
    public let tokensPerSecond: Double
    public let elapsed: Double

    enum CodingKeys: String, CodingKey {
        case step, loss
        case gradNorm = "grad_norm"
        case lr, tokens
        case tokensPerSecond = "tokens_per_second"
        case elapsed
        case evalLoss = "eval_loss"
    }
}

/// What a trainer tells its caller as it goes.
public enum TrainingEvent: Sendable {
    case resumed(step: Int, checkpoint: String)
    case step(TrainingStepReport, totalSteps: Int)
    case checkpoint(step: Int, folder: String)
}

/// Fine-tunes LoRA adapters on a frozen model: AdamW over the adapters, the loss on learned
/// tokens only, checkpoints written atomically into `output`, resumable from the newest one
/// with exactly the result of an uninterrupted run.
///
/// `output` holds: `adapter_model.safetensors` + `adapter_config.json` (the final adapter,
/// PEFT's format), `train_log.jsonl` (one `TrainingStepReport` a line) and
/// `checkpoint-N/` (adapter, `optimizer.safetensors` with AdamW's moments,
/// `trainer_state.json`).
///
/// In a multi-process job (`group`, data parallel) each rank computes its share of every
/// step's micro-batches; the gradients are summed in micro-batch order across ranks, so
/// every rank takes the same optimizer step and the adapter is the same bits for any
/// number of processes. Rank 0 alone writes files; `output` must be a folder every rank
/// reads, for resuming.
public final class LoRATrainer: @unchecked Sendable {
    public let model: LanguageModel
    public let settings: TrainingSettings
    public let plan: BatchPlan
    public let heldOut: TrainingDataset?
    public let output: String
    public let memory: TrainingMemory
    /// The memory plan's choices: recomputation and how the backward pass reads the weights.
    public let memoryPlan: MemoryPlan
    public var recompute: Bool { memoryPlan.recompute }
    /// The processes training together (one, unless launched by MPI).
    public let group: ProcessGroup
    private(set) var optimizer: AdamW
    private var adapters: [(path: String, adapter: LoRAAdapter)]

    public init(
        model: LanguageModel, settings: TrainingSettings, train: TrainingDataset, heldOut: TrainingDataset?,
        output: String, group: ProcessGroup = .single
    ) throws(LoRAError) {
        try settings.validate(model: model.model.config)
        self.model = model
        self.group = group
        self.settings = settings
        plan = BatchPlan(dataset: train, settings: settings)
        self.heldOut = heldOut
        self.output = output
        memory = TrainingMemory(
            config: model.model.config, settings: settings, precision: model.summary.precision, baseWeights: model.model.byteCount,
            processes: group.size)
        memoryPlan = memory.plan(settings)
        if memoryPlan.backwardData == .transposedCopy && model.summary.precision != .int8 {
            throw .invalidTrainingSetting(
                setting: "backwardData", problem: "transposed copies need int8 weights, not \(model.summary.precision.rawValue)")
        }
        model.model.backwardData = memoryPlan.backwardData
        adapters = model.model.attachLoRA(settings.lora, seed: settings.seed)
        optimizer = AdamW(adapters: adapters, settings: settings.optimizer)
    }

    public var schedule: LearningRateSchedule {
        LearningRateSchedule(
            peak: settings.learningRate, shape: settings.schedule, warmupSteps: settings.warmupSteps, totalSteps: plan.totalSteps)
    }

    var logPath: String { "\(output)/\(TrainingLog.fileName)" }

    /// Trains to the last step (from the newest checkpoint when `resume`), writing checkpoints
    /// and the final adapter. When `shouldStop` turns true it writes a checkpoint after the
    /// step under way and returns. Returns the reports of the steps it ran.
    @discardableResult
    public func run(resume: Bool, shouldStop: () -> Bool = { false }, onEvent: (TrainingEvent) -> Void = { _ in })
        throws(LoRAError) -> [TrainingStepReport]
    {
        defer { BufferCache.release() } // what the steps cached goes back when the run ends
        if group.isLeader {
            do {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            } catch {
                throw .unwritableFile(file: output, reason: error.localizedDescription)
            }
        }
        let newest = resume ? CheckpointFolder.all(in: output).last : nil
        try group.checkAgreement(try agreementFacts(resumingAt: newest?.step ?? 0))
        var firstStep = 0
        if let newest {
            try restore(from: newest.path, step: newest.step)
            firstStep = newest.step
            onEvent(.resumed(step: newest.step, checkpoint: newest.path))
        }
        // a resumed run rewrites the log's steps after its checkpoint; a new run starts it anew
        if group.isLeader {
            let kept = firstStep > 0 && FileManager.default.fileExists(atPath: logPath) ? try TrainingLog.read(logPath) : []
            try TrainingLog.write(kept.filter { $0.step <= firstStep }, to: logPath)
        }
        let totalSteps = plan.totalSteps
        let start = Date()
        var reports: [TrainingStepReport] = []
        var step = firstStep
        while step < totalSteps {
            let stepStart = Date()
            let count = settings.gradientAccumulation
            let batches = (0..<count).map { plan.microBatch(step * count + $0) }
            let counted = batches.reduce(0) { $0 + $1.countedTokens }
            let loss = try accumulateStep(batches, firstMicroBatch: step * count, lossScale: 1 / Float(max(counted, 1)))
            let lr = schedule.rate(at: step)
            let norm = optimizer.update(learningRate: lr)
            for (_, adapter) in adapters { adapter.zeroGradients() }
            step += 1
            let tokens = batches.reduce(0) { $0 + $1.tokens.count }
            var report = TrainingStepReport(
                step: step, loss: loss.mean, evalLoss: nil, gradNorm: norm, lr: lr, tokens: tokens,
                tokensPerSecond: Double(tokens) / Date().timeIntervalSince(stepStart),
                elapsed: Date().timeIntervalSince(start))
            if heldOut != nil, step == totalSteps || settings.evalEvery.map({ step % $0 == 0 }) == true {
                report.evalLoss = try heldOutLoss()
            }
            if group.isLeader { try TrainingLog.append(report, to: logPath) }
            reports.append(report)
            onEvent(.step(report, totalSteps: totalSteps))
            // every rank stops after the same step, whichever saw the request
            let stopping = try group.any(step < totalSteps && shouldStop())
            if step == totalSteps || stopping || settings.checkpointEvery.map({ step % $0 == 0 }) == true {
                let folder = try writeCheckpoint(step: step)
                onEvent(.checkpoint(step: step, folder: folder))
            }
            if stopping { return reports }
        }
        if group.isLeader { try model.model.savePEFTAdapter(settings.lora, to: output, baseModel: model.summary.path) }
        return reports
    }

    /// One step's gradients, left in the adapters: this rank's share of the micro-batches,
    /// each into cleared gradients, then summed in micro-batch order across ranks (one
    /// process with one micro-batch keeps them where the backward pass put them). Returns
    /// the loss over all of them.
    private func accumulateStep(_ batches: [TrainingBatch], firstMicroBatch: Int, lossScale: Float) throws(LoRAError) -> LossSum {
        if group.size == 1 && batches.count == 1 {
            setDropoutSeeds(microBatch: firstMicroBatch)
            defer { setDropoutSeeds(microBatch: nil) }
            return model.model.accumulateGradients(batches[0], lossScale: lossScale, recompute: recompute)
        }
        let length = adapters.reduce(0) { $0 + $1.adapter.a.count + $1.adapter.b.count }
        let sum = ProcessGroup.OrderedSum(group: group, count: batches.count, length: length)
        var losses: [LossSum] = []
        for index in group.share(of: batches.count) {
            setDropoutSeeds(microBatch: firstMicroBatch + index)
            losses.append(model.model.accumulateGradients(batches[index], lossScale: lossScale, recompute: recompute))
            var flat: [Float] = []
            flat.reserveCapacity(length)
            for (_, adapter) in adapters {
                adapter.appendGradients(to: &flat)
                adapter.zeroGradients()
            }
            sum.add(flat)
        }
        setDropoutSeeds(microBatch: nil)
        var rest = try sum.result()[...]
        for (_, adapter) in adapters { rest = adapter.setGradients(from: rest) }
        var loss = LossSum()
        for part in try group.gatherItems(losses, count: batches.count) { loss += part }
        return loss
    }

    /// What every rank of a job must share before training together: the model file, the
    /// data, the settings that decide the result and the checkpoint resumed from.
    private func agreementFacts(resumingAt step: Int) throws(LoRAError) -> [(name: String, value: String)] {
        guard group.size > 1 else { return [] }
        var decisive = settings
        decisive.memoryBudget = 0 // each machine's own; the backward pass it decides is compared below
        decisive.recompute = nil // recomputation changes no bit
        var data = SHA256()
        for dataset in [plan.dataset] + (heldOut.map { [$0] } ?? []) {
            for example in dataset.examples {
                example.tokens.withUnsafeBytes { data.update($0) }
                data.update(example.learned.map { $0 ? 1 : 0 })
            }
        }
        return [
            ("model", try ModelFingerprint.of(model.summary.path)),
            ("weight precision", model.summary.precision.rawValue),
            ("data", data.finalize()),
            ("training settings", SHA256.hex(of: Array(try! JSONEncoder.sorted.encode(decisive)))),
            ("backward pass", memoryPlan.backwardData.rawValue),
            ("checkpoint to resume", step == 0 ? "none" : "step \(step)"),
        ]
    }

    /// The mean loss over the held-out examples (no dropout), a micro-batch at a time (dealt
    /// out across the ranks of a job, their sums added in order).
    public func heldOutLoss() throws(LoRAError) -> Double? {
        guard let heldOut else { return nil }
        let starts = Array(stride(from: 0, to: heldOut.examples.count, by: settings.batchSize))
        var mine: [LossSum] = []
        for index in group.share(of: starts.count) {
            let examples = heldOut.examples[starts[index]..<min(starts[index] + settings.batchSize, heldOut.examples.count)]
            mine.append(model.model.loss(TrainingBatch(examples: examples)))
        }
        var loss = LossSum()
        for part in try group.gatherItems(mine, count: starts.count) { loss += part }
        return loss.mean
    }

    /// Each adapter's mask seed for micro-batch `index`, a function of the run's seed alone
    /// (so a resumed or recomputed pass draws the same masks); nil turns dropout off.
    private func setDropoutSeeds(microBatch index: Int?) {
        for (number, (_, adapter)) in adapters.enumerated() {
            adapter.dropoutSeed = index.map { index in
                var generator = SeededGenerator(seed: settings.seed &+ UInt64(index) &* 0x1_0000_0001 &+ UInt64(number) &* 0x9E37)
                return generator.next()
            }
        }
    }

    // MARK: Checkpoints

    private struct TrainerState: Codable {
        let step: Int
        let settings: TrainingSettings
    }

    /// Rank 0 writes; every rank returns the folder's path.
    private func writeCheckpoint(step: Int) throws(LoRAError) -> String {
        let folder = "\(output)/\(CheckpointFolder.name(step: step))"
        guard group.isLeader else { return folder }
        try AtomicFile.writeFolder(folder) { (temporary: String) throws(LoRAError) in
            try model.model.savePEFTAdapter(settings.lora, to: temporary, baseModel: model.summary.path)
            try SafetensorsWriter.write(optimizer.momentTensors, to: "\(temporary)/optimizer.safetensors")
            let state = try! JSONEncoder.sorted.encode(TrainerState(step: step, settings: settings))
            try AtomicFile.write(state, to: "\(temporary)/trainer_state.json")
        }
        return folder
    }

    private func restore(from folder: String, step: Int) throws(LoRAError) {
        let statePath = "\(folder)/trainer_state.json"
        guard let data = FileManager.default.contents(atPath: statePath),
            let state = try? JSONDecoder().decode(TrainerState.self, from: data)
        else {
            throw .malformedFile(file: statePath, problem: "not a trainer state")
        }
        guard state.settings == settings else {
            throw .invalidMetadata(
                file: statePath, key: "settings", problem: "the checkpoint was made with other training settings; resume with the same ones"
            )
        }
        try model.model.attach(PEFTAdapter(folder: folder))
        adapters = model.model.loraAdapters
        optimizer = AdamW(adapters: adapters, settings: settings.optimizer)
        let moments = try SafetensorsFile(path: "\(folder)/optimizer.safetensors")
        var tensors: [String: Tensor] = [:]
        for name in moments.tensors.keys { tensors[name] = try moments.values(of: name) }
        try optimizer.restore(moments: tensors, step: state.step, file: moments.path)
    }

    /// The log of the run so far (`train_log.jsonl`), one report a step.
    public func log() throws(LoRAError) -> [TrainingStepReport] { try TrainingLog.read(logPath) }
}

extension JSONEncoder {
    /// Keys sorted: the same bytes for the same value.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
