import Foundation

/// What a LoRA run will hold in memory, from the same accounting the model's allocations
/// follow (tests hold each part to what a real pass allocates: `LlamaModel.byteCount`,
/// `keptActivationBytes`, `transposedCopyBytes`): the frozen base, the
/// transposed copies the int8 backward-data product reads, the adapter with its gradients
/// and AdamW moments, and the activations of one micro-batch, every trained layer's kept for
/// the backward pass or only each layer's input (recomputation).
public struct TrainingMemory: Sendable, Codable, Equatable {
    public let baseWeights: Int
    public let backwardCopies: Int
    public let adapterParameters: Int
    public let adapter: Int
    public let optimizer: Int
    /// What one trained layer keeps for its backward pass, and what it keeps when it is
    /// recomputed instead (its input).
    public let layerActivations: Int
    public let layerInput: Int
    /// Alive beside what the layers keep, in either variant: what a layer's backward
    /// recomputes (silu(gate)·up, a norm's output), the head's logits and their gradient for
    /// one chunk of rows, and the residual stream with its gradient.
    public let workingSet: Int
    /// All activations of a micro-batch: every trained layer's kept, or only their inputs
    /// with one layer's activations at a time.
    public let activationsKept: Int
    public let activationsRecomputed: Int

    /// For `config` loaded at `precision` and these settings: a micro-batch of `batchSize`
    /// sequences of `sequenceLength` tokens.
    public init(config: LlamaConfig, settings: TrainingSettings, precision: WeightPrecision = .int8) {
        let layers = config.numHiddenLayers
        // the backward pass runs from the top layer down to the lowest one with an adapter
        let lowest = min(settings.lora.layers?.min() ?? 0, layers)
        let trainedLayers = layers - lowest
        baseWeights = LlamaModel.weightByteCount(config: config, precision: precision)
        backwardCopies = lowest < layers ? LlamaModel.backwardCopyByteCount(config: config, precision: precision, lowest: lowest) : 0
        let perLayer = settings.lora.targets.compactMap(Projection.init(rawValue:)).reduce(0) { sum, projection in
            let shape = projection.shape(config)
            return sum + settings.lora.rank * (shape.inFeatures + shape.outFeatures)
        }
        adapterParameters = (settings.lora.layers.map { Set($0).count } ?? layers) * perLayer
        adapter = 2 * adapterParameters * MemoryLayout<Float>.size // values and gradients
        optimizer = 2 * adapterParameters * MemoryLayout<Float>.size // AdamW's two moments
        let sequences = Array(repeating: settings.sequenceLength, count: settings.batchSize)
        let tokens = settings.batchSize * settings.sequenceLength
        let float = MemoryLayout<Float>.size
        layerActivations = LlamaDecoderLayer.Activations.byteCount(config: config, sequences: sequences)
        layerInput = tokens * config.hiddenSize * float
        workingSet =
            tokens * (config.intermediateSize + config.hiddenSize) * float
            + 2 * LlamaModel.headRows * config.vocabSize * float + 2 * tokens * config.hiddenSize * float
        activationsKept = trainedLayers * layerActivations + workingSet
        activationsRecomputed = trainedLayers * layerInput + min(trainedLayers, 1) * layerActivations + workingSet
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
            base weights            \(mib(baseWeights))
            backward copies (Wᵀ)    \(mib(backwardCopies))
            adapter + gradients     \(mib(adapter))  (\(adapterParameters) parameters)
            AdamW moments           \(mib(optimizer))
            activations, kept       \(mib(activationsKept))
            activations, recomputed \(mib(activationsRecomputed))
            total                   \(mib(total(recompute: chosen)))  (\(chosen ? "recomputing layers" : "keeping activations"))
            """
    }
}
