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
                last.reduce(0, { $0 + dataset.examples[$1].tokens.count }) + length <= settings.sequenceLength
            {
                sequences[sequences.count - 1].append(index)
            } else {
                sequences.append([index])
            }
        }
        return stride(from: 0, to: sequences.count, by: settings.batchSize).map {
            Array(sequences[$0..<min($0 + settings.batchSize, sequences.count)])
        }
    }
}
