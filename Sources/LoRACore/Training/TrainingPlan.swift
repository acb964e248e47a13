import Foundation

/// Everything that decides a fine-tuning run: with the same settings, data and model, the
/// run gives the same adapter bit for bit.
public struct TrainingSettings: Sendable, Codable, Equatable {
    public var lora = LoRAConfiguration()
    public var optimizer = AdamW.Settings()
    public var learningRate: Float = 2e-4
    public var schedule: LearningRateSchedule.Shape = .constant
    public var warmupSteps = 0
    /// Optimizer steps; nil: `epochs` passes over the data.
    public var steps: Int?
    public var epochs = 1
    /// Sequences per micro-batch.
    public var batchSize = 4
    public var sequenceLength = 256
    /// Micro-batches per optimizer step.
    public var gradientAccumulation = 1
    /// Several examples per sequence (never attending to each other) instead of one.
    public var pack = false
    public var evalEvery: Int?
    public var checkpointEvery: Int?
    public var seed: UInt64 = 0
    /// nil: recompute layers in the backward pass only when the kept activations would
    /// exceed `memoryBudget`.
    public var recompute: Bool?
    /// Bytes the activations of one micro-batch may take before recomputation is chosen.
    public var memoryBudget = Int(ProcessInfo.processInfo.physicalMemory / 2)

    public init() {}

    /// The first setting that cannot work, as an error naming its option.
    public func validate(model: LlamaConfig) throws(LoRAError) {
        if let problem = lora.problem(for: model) { throw .invalidTrainingSetting(option: "--rank/--alpha/--dropout/--targets/--layers", problem: problem) }
        if !(learningRate > 0) { throw .invalidTrainingSetting(option: "--lr", problem: "\(learningRate) must be positive") }
        if let steps, steps < 1 { throw .invalidTrainingSetting(option: "--steps", problem: "\(steps) must be at least 1") }
        if epochs < 1 { throw .invalidTrainingSetting(option: "--epochs", problem: "\(epochs) must be at least 1") }
        if batchSize < 1 { throw .invalidTrainingSetting(option: "--batch", problem: "\(batchSize) must be at least 1") }
        if sequenceLength < 2 || sequenceLength > model.maxPositionEmbeddings {
            throw .invalidTrainingSetting(option: "--seq-len", problem: "\(sequenceLength) must be in 2...\(model.maxPositionEmbeddings)")
        }
        if gradientAccumulation < 1 { throw .invalidTrainingSetting(option: "--grad-accum", problem: "\(gradientAccumulation) must be at least 1") }
        if warmupSteps < 0 { throw .invalidTrainingSetting(option: "--warmup", problem: "\(warmupSteps) must not be negative") }
        if optimizer.weightDecay < 0 { throw .invalidTrainingSetting(option: "--weight-decay", problem: "must not be negative") }
        if let clip = optimizer.clipNorm, !(clip > 0) { throw .invalidTrainingSetting(option: "--clip", problem: "\(clip) must be positive") }
        if let evalEvery, evalEvery < 1 { throw .invalidTrainingSetting(option: "--eval-every", problem: "must be at least 1") }
        if let checkpointEvery, checkpointEvery < 1 { throw .invalidTrainingSetting(option: "--checkpoint-every", problem: "must be at least 1") }
    }
}

/// The order in which examples are seen: micro-batch k of the run is a pure function of
/// (data, settings, k), so a resumed run needs nothing but the step to continue exactly.
public struct BatchPlan: Sendable {
    public let dataset: TrainingDataset
    public let settings: TrainingSettings
    /// Micro-batches of one epoch, as example indices per sequence.
    private let epochBatchCount: Int

    public init(dataset: TrainingDataset, settings: TrainingSettings) {
        self.dataset = dataset
        self.settings = settings
        epochBatchCount = Self.batches(dataset: dataset, settings: settings, epoch: 0).count
    }

    public var microBatchesPerEpoch: Int { epochBatchCount }

    /// Optimizer steps of the run.
    public var totalSteps: Int {
        settings.steps ?? max(1, (settings.epochs * epochBatchCount + settings.gradientAccumulation - 1) / settings.gradientAccumulation)
    }

    /// Micro-batch `index` of the run (epochs follow one another, each in its own order).
    public func microBatch(_ index: Int) -> TrainingBatch {
        let epoch = index / epochBatchCount
        let sequences = Self.batches(dataset: dataset, settings: settings, epoch: epoch)[index % epochBatchCount]
        let examples = sequences.flatMap { $0.map { dataset.examples[$0] } }
        return TrainingBatch(examples: examples)
    }

    /// One epoch: examples in an order shuffled from (seed, epoch), one per sequence or packed
    /// greedily up to the sequence length, `batchSize` sequences per micro-batch.
    static func batches(dataset: TrainingDataset, settings: TrainingSettings, epoch: Int) -> [[[Int]]] {
        var mixer = SeededGenerator(seed: settings.seed ^ 0x5EED_0000_0000_0000)
        for _ in 0...epoch { _ = mixer.next() }
        let order = TrainingDataset.shuffled(dataset.examples.count, seed: mixer.next())
        var sequences: [[Int]] = []
        for index in order {
            let length = dataset.examples[index].tokens.count
            if settings.pack, let last = sequences.last,
               last.reduce(0, { $0 + dataset.examples[$1].tokens.count }) + length <= settings.sequenceLength {
                sequences[sequences.count - 1].append(index)
            } else {
                sequences.append([index])
            }
        }
        return stride(from: 0, to: sequences.count, by: settings.batchSize).map { Array(sequences[$0..<min($0 + settings.batchSize, sequences.count)]) }
    }
}

/// What a LoRA run will hold in memory, from the library's own accounting of the model's
/// shapes: the frozen int8 base, the transposed copies the backward-data product reads,
/// the adapter with its gradients and AdamW moments, and the activations of one micro-batch
/// with every layer's kept for the backward pass or only each layer's input (recomputation).
public struct TrainingMemory: Sendable, Codable, Equatable {
    public let baseWeights: Int
    public let backwardCopies: Int
    public let adapterParameters: Int
    public let adapter: Int
    public let optimizer: Int
    public let activationsKept: Int
    public let activationsRecomputed: Int

    /// For `config` with int8 weights (Q8_0: 34 bytes per 32 weights) and these settings, for
    /// a micro-batch of `batchSize` sequences of `sequenceLength` tokens.
    public init(config: LlamaConfig, settings: TrainingSettings) {
        let d = config.hiddenSize, f = config.intermediateSize, q = config.queryWidth, kv = config.keyValueWidth
        let layers = config.numHiddenLayers, vocab = config.vocabSize
        func int8(_ rows: Int, _ cols: Int) -> Int { rows * ((cols + 31) / 32) * 34 }
        let perLayer = int8(q, d) + 2 * int8(kv, d) + int8(d, q) + 2 * int8(f, d) + int8(d, f)
        let embedding = int8(vocab, d), head = config.tieWordEmbeddings ? 0 : int8(vocab, d)
        baseWeights = layers * perLayer + embedding + head + (2 * layers + 1) * d * 4
        // every projection's Wᵀ and the head's (the tied embedding read as the head)
        backwardCopies = layers * perLayer + int8(d, vocab)
        let shapes: [String: (inputs: Int, outputs: Int)] = [
            "q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d), "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d),
        ]
        let trainedLayers = settings.lora.layers?.count ?? layers
        adapterParameters = trainedLayers * settings.lora.targets.reduce(0) { sum, name in
            sum + settings.lora.rank * ((shapes[name]?.inputs ?? 0) + (shapes[name]?.outputs ?? 0))
        }
        adapter = 2 * adapterParameters * 4       // values and gradients
        optimizer = 2 * adapterParameters * 4     // AdamW's two moments
        let tokens = settings.batchSize * settings.sequenceLength, t = settings.sequenceLength
        // kept per token and layer: the input, q k v, attention's mixed, the residual, gate
        // and up (LlamaDecoderLayer.Activations), and each sequence's attention probabilities
        // [heads, t, t]; gate·up and a norm's output are recomputed, one layer's at a time
        let perTokenLayer = (2 * d + q + 2 * kv + q + 2 * f + 2) * 4
        let probabilities = settings.batchSize * config.numAttentionHeads * t * t * 4
        let oneLayer = tokens * perTokenLayer + probabilities
        let recomputedProduct = tokens * (f + d) * 4
        // the head's logits and their gradient for one chunk of rows
        let headChunk = 2 * LlamaModel.headRowsPerChunk * vocab * 4
        let residualStream = 2 * tokens * d * 4
        activationsKept = trainedLayers * oneLayer + recomputedProduct + headChunk + residualStream
        activationsRecomputed = trainedLayers * tokens * d * 4 + oneLayer + recomputedProduct + headChunk + residualStream
    }

    /// Whether to recompute, as `settings` asks or as the budget decides.
    public func recompute(_ settings: TrainingSettings) -> Bool { settings.recompute ?? (activationsKept > settings.memoryBudget) }

    public func total(recompute: Bool) -> Int {
        baseWeights + backwardCopies + adapter + optimizer + (recompute ? activationsRecomputed : activationsKept)
    }

    /// A table of the figures, in MiB.
    public func report(recompute chosen: Bool) -> String {
        func mib(_ bytes: Int) -> String { String(format: "%10.1f MiB", Double(bytes) / 1_048_576) }
        return """
            int8 base weights       \(mib(baseWeights))
            backward copies (Wᵀ)    \(mib(backwardCopies))
            adapter + gradients     \(mib(adapter))  (\(adapterParameters) parameters)
            AdamW moments           \(mib(optimizer))
            activations, kept       \(mib(activationsKept))
            activations, recomputed \(mib(activationsRecomputed))
            total                   \(mib(total(recompute: chosen)))  (\(chosen ? "recomputing layers" : "keeping activations"))
            """
    }
}
