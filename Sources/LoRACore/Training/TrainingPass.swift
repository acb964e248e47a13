/// Sequences side by side for one forward and backward pass. No padding is stored: each
/// sequence keeps its own length and positions, attention never crosses from one to another,
/// so the pass equals a padded, masked batch without computing the padding.
public struct TrainingBatch: Sendable, Equatable {
    public let tokens: [Int32]
    /// Per position: the next token when the loss counts it, else -1 (masked or last).
    public let targets: [Int32]
    /// Lengths of the sequences, in order.
    public let sequences: [Int]

    public init(tokens: [Int32], targets: [Int32], sequences: [Int]) {
        precondition(tokens.count == targets.count && sequences.reduce(0, +) == tokens.count && sequences.allSatisfy { $0 > 0 },
                     "TrainingBatch: \(tokens.count) tokens, \(targets.count) targets, sequences \(sequences)")
        self.tokens = tokens
        self.targets = targets
        self.sequences = sequences
    }

    /// Examples one after another, one sequence each.
    public init(examples: some Collection<TrainingExample>) {
        self.init(tokens: examples.flatMap(\.tokens), targets: examples.flatMap(\.targets), sequences: examples.map(\.tokens.count))
    }

    /// Targets the loss counts.
    public var countedTokens: Int { targets.count { $0 >= 0 } }
}

/// The summed loss of a pass and how many targets it counted (mean = sum / counted).
public struct LossSum: Sendable, Equatable {
    public var sum: Double
    public var counted: Int

    public init(sum: Double = 0, counted: Int = 0) {
        self.sum = sum
        self.counted = counted
    }

    public var mean: Double { counted > 0 ? sum / Double(counted) : 0 }

    public static func += (lhs: inout LossSum, rhs: LossSum) {
        lhs.sum += rhs.sum
        lhs.counted += rhs.counted
    }
}

extension LlamaModel {
    /// Rows of the output head computed at once: a [rows, vocab] slice of logits at a time,
    /// never the whole [tokens, vocab] matrix.
    static let headRowsPerChunk = 128

    /// The trained layers: from the lowest one with a LoRA adapter up (backward stops there).
    var lowestTrainedLayer: Int? {
        layers.firstIndex { layer in
            (layer.selfAttn.projections + layer.mlp.projections).contains { $0.linear.trainableAdapter != nil }
        }
    }

    /// Forward, loss and backward over `batch`: adds dL/dA and dL/dB into every attached LoRA
    /// adapter for L = lossScale · Σ per-token losses (lossScale = 1/N gives the mean over the N
    /// targets of an optimizer step, however it is split into batches). `recompute` keeps
    /// only each layer's input and runs the layer again in the backward pass (gradient
    /// checkpointing): the same gradients, bit for bit, for about a third more work.
    public func accumulateGradients(_ batch: TrainingBatch, lossScale: Float, recompute: Bool) -> LossSum {
        guard let lowest = lowestTrainedLayer else { preconditionFailure("LlamaModel.accumulateGradients: no LoRA adapter is attached") }
        let positions = Self.positions(batch.sequences, start: 0)
        func run(_ index: Int, _ x: Tensor, keep: Bool) -> (Tensor, LlamaDecoderLayer.Activations?) {
            layers[index](x, positions: positions, sequences: batch.sequences, frequencies: ropeFrequencies, layout: ropeLayout,
                          caches: [], layer: index, keep: keep)
        }
        var x = embedTokens(batch.tokens)
        var inputs: [Tensor?] = Array(repeating: nil, count: layers.count)
        var kept: [LlamaDecoderLayer.Activations?] = Array(repeating: nil, count: layers.count)
        for index in layers.indices {
            if recompute, index >= lowest { inputs[index] = x }
            let (output, activations) = run(index, x, keep: !recompute && index >= lowest)
            kept[index] = activations
            x = output
        }
        let (normed, rstd) = norm(x)
        let (loss, dNormed) = headLoss(normed, targets: batch.targets, gradientScale: lossScale)
        var dx = Kernels.rmsNormBackward(dNormed!, x: x, weight: norm.weight, rstd: rstd)
        for index in layers.indices.reversed() where index >= lowest {
            let saved = kept[index] ?? run(index, inputs[index]!, keep: true).1!
            kept[index] = nil
            inputs[index] = nil
            guard let below = layers[index].backward(dx, saved, positions: positions, sequences: batch.sequences,
                                                     frequencies: ropeFrequencies, layout: ropeLayout,
                                                     inputGradient: index > lowest) else { break }
            dx = below
        }
        return loss
    }

    /// The summed loss over `batch`'s counted targets, without gradients (held-out loss).
    public func loss(_ batch: TrainingBatch) -> LossSum {
        guard batch.countedTokens > 0 else { return LossSum() }
        let (x, _) = decoderLayers(batch.tokens, sequences: batch.sequences, caches: [], keep: false)
        return headLoss(norm(x).output, targets: batch.targets, gradientScale: nil).loss
    }

    /// Cross-entropy of the head's predictions at the counted rows of `normed` [tokens, dim],
    /// a chunk of rows at a time (masked rows cost nothing), summed in double in row order;
    /// with a gradient scale, also dL/dnormed.
    func headLoss(_ normed: Tensor, targets: [Int32], gradientScale: Float?) -> (loss: LossSum, gradient: Tensor?) {
        let counted = targets.indices.filter { targets[$0] >= 0 }
        let gradient = gradientScale.map { _ in Tensor(zeros: normed.shape) }
        var loss = LossSum()
        for start in stride(from: 0, to: counted.count, by: Self.headRowsPerChunk) {
            let rows = Array(counted[start..<min(start + Self.headRowsPerChunk, counted.count)])
            let chunkTargets = rows.map { targets[$0] }
            let logits = lmHead(Kernels.gatherRows(normed, rows.map(Int32.init)))  // [rows, vocab]
            let (losses, logSumExp) = Kernels.crossEntropyLosses(logits: logits, targets: chunkTargets)
            loss += LossSum(sum: losses.reduce(0) { $0 + Double($1) }, counted: rows.count)
            guard let gradient, let gradientScale else { continue }
            let dLogits = Kernels.crossEntropyBackward(logits: logits, targets: chunkTargets, logSumExp: logSumExp, scale: gradientScale)
            Kernels.scatterRows(lmHead.backwardData(dLogits), into: gradient, at: rows)
        }
        return (loss, gradient)
    }
}
