import Foundation

/// What a LoRA run will hold in memory, from the same accounting the model's allocations
/// follow (tests hold each part to what a real pass allocates: `LlamaModel.byteCount`,
/// `keptActivationBytes`, `transposedCopyBytes`): the frozen base, the
/// transposed copies the int8 backward-data product reads, the adapter with its gradients
/// and AdamW moments, and the activations of one micro-batch, every trained layer's kept for
/// the backward pass or only each layer's input (recomputation).
public struct TrainingMemory: Sendable, Codable, Equatable {
    /// How the frozen base is held.
    public let precision: WeightPrecision
    public let baseWeights: Int
    public let backwardCopies: Int
    public let adapterParameters: Int
    public let adapter: Int
    public let optimizer: Int
    /// A step's gradients summed across micro-batches and processes (in order, see
    /// `ProcessGroup.OrderedSum`): nothing for one micro-batch in one process; else the
    /// running sum and one micro-batch's copy, or, across N processes, this rank's share of
    /// micro-batch gradients, the segments it receives and the gathered sum.
    public let gradientSum: Int
    /// What one trained layer keeps for its backward pass, and what it keeps when it is
    /// recomputed instead (its input).
    public let layerActivations: Int
    public let layerInput: Int
    /// Alive beside what the layers keep, in either variant: what a layer's backward
    /// recomputes (silu(gate)·up, a norm's output), the head's logits for one chunk of rows
    /// (their gradient is written over them), and the residual stream with its gradient.
    public let workingSet: Int
    /// All activations of a micro-batch: every trained layer's kept, or only their inputs
    /// with one layer's activations at a time.
    public let activationsKept: Int
    public let activationsRecomputed: Int

    /// For `config` loaded at `precision` and these settings: a micro-batch of `batchSize`
    /// sequences of `sequenceLength` tokens.
    /// `baseWeights`: the loaded model's bytes when known (its blocks' types decide them),
    /// else what `config` takes at `precision` (a 4-bit base as Q4_0). `processes`: the
    /// ranks of a data-parallel job.
    public init(
        config: LlamaConfig, settings: TrainingSettings, precision: WeightPrecision = .int8, baseWeights: Int? = nil,
        processes: Int = 1
    ) {
        self.precision = precision
        let layers = config.numHiddenLayers
        // the backward pass runs from the top layer down to the lowest one with an adapter
        let lowest = min(settings.lora.layers?.min() ?? 0, layers)
        let trainedLayers = layers - lowest
        self.baseWeights = baseWeights ?? LlamaModel.weightByteCount(config: config, precision: precision)
        backwardCopies = lowest < layers ? LlamaModel.backwardCopyByteCount(config: config, precision: precision, lowest: lowest) : 0
        let perLayer = settings.lora.targets.compactMap(Projection.init(rawValue:)).reduce(0) { sum, projection in
            let shape = projection.shape(config)
            return sum + settings.lora.rank * (shape.inFeatures + shape.outFeatures)
        }
        adapterParameters = (settings.lora.layers.map { Set($0).count } ?? layers) * perLayer
        adapter = 2 * adapterParameters * MemoryLayout<Float>.size // values and gradients
        optimizer = 2 * adapterParameters * MemoryLayout<Float>.size // AdamW's two moments
        let count = settings.gradientAccumulation
        let mine = (count + processes - 1) / processes
        let vectors =
            processes == 1
            ? (count == 1 ? 0 : 2) // running sum, one micro-batch's copy
            : mine + 1 + 2 + (count + processes - 1) / processes // share, copy, result and restored, received segments
        gradientSum = vectors * adapterParameters * MemoryLayout<Float>.size
        let sequences = Array(repeating: settings.sequenceLength, count: settings.batchSize)
        let tokens = settings.batchSize * settings.sequenceLength
        let float = MemoryLayout<Float>.size
        layerActivations = LlamaDecoderLayer.Activations.byteCount(config: config, sequences: sequences)
        layerInput = tokens * config.hiddenSize * float
        workingSet =
            tokens * (config.intermediateSize + config.hiddenSize) * float
            + LlamaModel.headRows * config.vocabSize * float + 2 * tokens * config.hiddenSize * float
        activationsKept = trainedLayers * layerActivations + workingSet
        activationsRecomputed = trainedLayers * layerInput + min(trainedLayers, 1) * layerActivations + workingSet
    }

    /// The plan of a run on the checkpoint at `path` (a GGUF file or a Hugging Face folder),
    /// from its header or config alone: what decides, before any weight is read, whether the
    /// run fits.
    public init(checkpoint path: String, settings: TrainingSettings, precision: WeightPrecision, processes: Int = 1) throws(LoRAError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            self.init(
                config: try LlamaConfig(huggingFaceConfig: "\(path)/config.json"), settings: settings, precision: precision,
                processes: processes)
        } else {
            let gguf = try GGUFFile(path: path)
            let config = try LlamaConfig(gguf: gguf)
            self.init(
                config: config, settings: settings, precision: precision,
                baseWeights: try LlamaModel.weightByteCount(gguf: gguf, config: config, precision: precision), processes: processes)
        }
    }

    enum CodingKeys: String, CodingKey {
        case precision
        case baseWeights = "base_weights"
        case backwardCopies = "backward_copies"
        case adapterParameters = "adapter_parameters"
        case adapter, optimizer
        case gradientSum = "gradient_sum"
        case layerActivations = "layer_activations"
        case layerInput = "layer_input"
        case workingSet = "working_set"
        case activationsKept = "activations_kept"
        case activationsRecomputed = "activations_recomputed"
    }

    /// Whether to recompute, as `settings` asks or as the budget decides (without copies).
    public func recompute(_ settings: TrainingSettings) -> Bool {
        settings.recompute ?? (total(recompute: false, copies: false) > settings.memoryBudget)
    }

    /// How the backward pass reads the weights, as `settings` asks or as the budget decides:
    /// int8 weights take their transposed copies when the run still fits with them.
    public func backwardData(_ settings: TrainingSettings) -> BackwardDataMode {
        if let chosen = settings.backwardData { return chosen }
        let fits = total(recompute: recompute(settings), copies: true) <= settings.memoryBudget
        return precision == .int8 && fits ? .transposedCopy : .direct
    }

    /// The peak of a run: the base, the transposed copies when built, the adapter with its
    /// gradients and moments, the gradient sums, and the activations kept or recomputed.
    public func total(recompute: Bool, copies: Bool) -> Int {
        baseWeights + (copies ? backwardCopies : 0) + adapter + optimizer + gradientSum
            + (recompute ? activationsRecomputed : activationsKept)
    }

    /// The plan `settings` make of this memory: the choices and the peak they need.
    public func plan(_ settings: TrainingSettings) -> MemoryPlan {
        let recompute = recompute(settings)
        let backward = backwardData(settings)
        return MemoryPlan(
            recompute: recompute, backwardData: backward, totalBytes: total(recompute: recompute, copies: backward == .transposedCopy),
            totalBytesWithoutCopies: total(recompute: recompute, copies: false),
            totalBytesWithCopies: precision == .int8 ? total(recompute: recompute, copies: true) : nil, parts: self)
    }

    /// A table of the figures, in MiB, with both backward variants and the one chosen.
    public func report(_ plan: MemoryPlan) -> String {
        func mib(_ bytes: Int) -> String { String(format: "%10.1f MiB", Double(bytes) / 1_048_576) }
        let copies =
            precision == .int8 ? mib(backwardCopies) + (plan.backwardData == .transposedCopy ? "  (built)" : "  (not built)") : mib(0)
        var lines = [
            "base weights            \(mib(baseWeights))  (\(precision.rawValue))",
            "backward copies (Wᵀ)    \(copies)",
            "adapter + gradients     \(mib(adapter))  (\(adapterParameters) parameters)",
            "AdamW moments           \(mib(optimizer))",
            "gradient sums           \(mib(gradientSum))",
            "activations, kept       \(mib(activationsKept))",
            "activations, recomputed \(mib(activationsRecomputed))",
            "total, direct backward  \(mib(plan.totalBytesWithoutCopies))",
        ]
        if let withCopies = plan.totalBytesWithCopies { lines.append("total, with copies      \(mib(withCopies))") }
        let layers = plan.recompute ? "recomputing layers" : "keeping activations"
        let backward = plan.backwardData == .transposedCopy ? "transposed copies" : "\(plan.backwardData.rawValue) backward"
        lines.append("total                   \(mib(plan.totalBytes))  (\(layers), \(backward))")
        return lines.joined(separator: "\n")
    }
}

/// A run's memory plan as `lora plan --json` and `lora finetune --dry-run --json` print it:
/// the peak the run will need (`total_bytes`) with the choices behind it, the peak of each
/// backward variant and every part.
public struct MemoryPlan: Sendable, Codable, Equatable {
    public let recompute: Bool
    public let backwardData: BackwardDataMode
    public let totalBytes: Int
    /// The peak with each backward variant (with copies: int8 bases only).
    public let totalBytesWithoutCopies: Int
    public let totalBytesWithCopies: Int?
    public let parts: TrainingMemory

    enum CodingKeys: String, CodingKey {
        case recompute
        case backwardData = "backward_data"
        case totalBytes = "total_bytes"
        case totalBytesWithoutCopies = "total_bytes_direct"
        case totalBytesWithCopies = "total_bytes_with_copies"
        case parts
    }

    /// One JSON object, keys sorted.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }
}
