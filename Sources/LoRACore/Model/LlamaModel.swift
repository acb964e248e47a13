/// A Llama-family causal language model: embeddings, decoder layers, final norm, output head.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    /// How the checkpoint's Q/K rows pair dimensions for RoPE (GGUF permutes them).
    public let ropeLayout: RoPELayout
    public let embedTokens: Embedding
    public let layers: [LlamaDecoderLayer]
    public let norm: RMSNorm
    /// The output head [vocab, dim]; shares the embedding table when embeddings are tied.
    public let lmHead: Linear
    let ropeFrequencies: [Float]
    /// The block type each matrix of the checkpoint was held in, by stored type.
    public let conversions: WeightConversions

    init(
        config: LlamaConfig, ropeLayout: RoPELayout, ropeFrequencies: [Float], embedTokens: Embedding,
        layers: [LlamaDecoderLayer], norm: RMSNorm, lmHead: Linear, conversions: WeightConversions = WeightConversions()
    ) {
        self.conversions = conversions
        self.config = config
        self.ropeLayout = ropeLayout
        self.ropeFrequencies = ropeFrequencies
        self.embedTokens = embedTokens
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead
    }

    /// Every projection with its Hugging Face module path (`model.layers.3.self_attn.q_proj`).
    public var projections: [(path: String, linear: Linear)] {
        layers.enumerated().flatMap { index, layer in layer.projections.map { ($0.projection.modulePath(layer: index), $0.linear) } }
    }

    /// Which positions get logits: all for scoring, the last for generating, none for
    /// filling a cache.
    public enum LogitRows: Sendable { case all, last, none }

    /// Rows of the output head computed at once when taking a loss: a [rows, vocab] slice of
    /// logits at a time, never the whole [tokens, vocab] matrix of a long text. Each slice
    /// streams the whole head (SmolLM2's 49152 × 576) through both products again: at 128
    /// rows its forward and backward took 1.28-1.34x as long as at 512 (400-490 against
    /// 310-360 ms for 1024 rows, a fifth of a training step), for 150 MB more of logits and
    /// their gradient there.
    static let headRows = 512

    /// Tokens of one sequence per forward pass wherever a prompt goes through a cache
    /// (generation's prefill, batched or not, scoring, perplexity), cut from position 0.
    /// Attention's arithmetic for a position depends on which rows share its pass, and an
    /// int8 model's rounding can amplify a last-bit difference into a visible one; one
    /// chunking everywhere makes every path compute the same bits for the same sequence.
    /// 64 is as fast as one batch and keeps an eighth of a 512-token prompt's activations.
    public static let promptChunk = 64

    /// A cache for `capacity` positions; half precision for an int8 model (its own rounding
    /// dwarfs the cache's), f32 for an exact one.
    public func makeCache(capacity: Int? = nil) -> KVCache {
        let exact = if case .f32 = lmHead.weight { true } else { false }
        return KVCache(config: config, capacity: capacity ?? config.maxPositionEmbeddings, precision: exact ? .f32 : .f16)
    }

    // MARK: - Forward

    /// Runs `tokens` at positions following what `cache` holds (or from 0 without one) and
    /// returns logits [rows, vocab]. Without a cache, `sequences` (lengths summing to the
    /// token count) puts several sequences side by side: each starts at position 0 and none
    /// attends to another.
    public func forward(_ tokens: [Int32], sequences: [Int]? = nil, cache: KVCache? = nil, logits rows: LogitRows = .all) -> Tensor? {
        let sequences = sequences ?? [tokens.count]
        precondition(cache == nil || sequences.count == 1, "LlamaModel.forward: sequences \(sequences) with one cache")
        let caches = cache.map { [$0] } ?? []
        check(tokens, sequences: sequences, caches: caches)
        let x = decoderLayers(tokens, sequences: sequences, caches: caches).output
        switch rows {
        case .all: return lmHead(norm(x).output)
        case .last: return lmHead(norm(x.rows(tokens.count - 1..<tokens.count)).output)
        case .none: return nil
        }
    }

    /// Several sequences side by side, each continuing its own cache (`caches[i]` for
    /// `sequences[i]`, all distinct): batched decoding, where B sequences turn every GEMV
    /// into one small GEMM, and the continuations of one shared context. Returns logits
    /// [tokens, vocab] for `.all`, and each sequence's last row [sequences, vocab] for `.last`.
    public func forward(_ tokens: [Int32], sequences: [Int], caches: [KVCache], logits rows: LogitRows) -> Tensor? {
        precondition(
            caches.count == sequences.count && Set(caches.map(ObjectIdentifier.init)).count == caches.count,
            "LlamaModel.forward: \(caches.count) caches for \(sequences.count) sequences (one distinct cache each)")
        check(tokens, sequences: sequences, caches: caches)
        let x = decoderLayers(tokens, sequences: sequences, caches: caches).output
        switch rows {
        case .all: return lmHead(norm(x).output)
        case .none: return nil
        case .last:
            var end = 0
            let lastRows = sequences.map {
                end += $0
                return Int32(end - 1)
            }
            return lmHead(norm(Kernels.gatherRows(x, lastRows)).output)
        }
    }

    private func check(_ tokens: [Int32], sequences: [Int], caches: [KVCache]) {
        precondition(!tokens.isEmpty, "LlamaModel.forward: no tokens")
        precondition(
            tokens.allSatisfy { $0 >= 0 && Int($0) < config.vocabSize },
            "LlamaModel.forward: a token id is outside the vocabulary of \(config.vocabSize)")
        precondition(
            sequences.allSatisfy { $0 > 0 } && sequences.reduce(0, +) == tokens.count,
            "LlamaModel.forward: sequences \(sequences) for \(tokens.count) tokens")
        for (cache, length) in zip(caches, sequences) {
            precondition(cache.free >= length, "LlamaModel.forward: \(length) tokens do not fit the cache (\(cache.free) free)")
        }
    }

    /// What a layer keeps in the forward pass for its backward pass.
    enum Kept {
        /// Everything its backward reads.
        case activations(LlamaDecoderLayer.Activations)
        /// Only its input: the backward runs the layer again (gradient checkpointing).
        case input(Tensor)
    }

    /// Which layers keep what for a backward pass: the layers from `lowest` up, each its
    /// activations or, with `recompute`, its input.
    struct Keeping {
        let lowest: Int
        let recompute: Bool
    }

    /// The one layer loop of both passes: the decoder layers over `tokens` (checked by the
    /// caller), returning the last layer's output [tokens, dim] and, with `keeping`, what
    /// each trained layer keeps (nil below the lowest). Sequence i continues `caches[i]` and
    /// is appended to it (no caches: every sequence starts at 0).
    func decoderLayers(
        _ tokens: [Int32], sequences: [Int], caches: [KVCache],
        keeping: Keeping? = nil
    ) -> (output: Tensor, kept: [Kept?]) {
        let positions =
            caches.isEmpty
            ? Self.positions(sequences, start: 0)
            : zip(sequences, caches).flatMap { length, cache in (0..<length).map { Int32(cache.count + $0) } }
        var x = embedTokens(tokens)
        var kept: [Kept?] = Array(repeating: nil, count: layers.count)
        for index in layers.indices {
            let keeps = keeping.map { index >= $0.lowest } ?? false
            let recompute = keeping?.recompute ?? false
            if keeps && recompute { kept[index] = .input(x) }
            let (output, activations) = layers[index](
                x, positions: positions, sequences: sequences, frequencies: ropeFrequencies,
                layout: ropeLayout, caches: caches, layer: index, keep: keeps && !recompute)
            if let activations { kept[index] = .activations(activations) }
            x = output
        }
        var start = 0
        for (cache, length) in zip(caches, sequences) {
            cache.append(Array(tokens[start..<start + length]))
            start += length
        }
        return (x, kept)
    }

    /// Each token's position: counting from `start` within each sequence.
    static func positions(_ sequences: [Int], start: Int) -> [Int32] {
        sequences.flatMap { (0..<$0).map { Int32(start + $0) } }
    }

    // MARK: - Backward

    /// The layers that train: from the lowest one with a LoRA adapter up (backward stops there).
    var lowestTrainedLayer: Int? {
        layers.firstIndex { layer in layer.projections.contains { $0.linear.trainableAdapter != nil } }
    }

    /// The backward pass of `decoderLayers` over sequences side by side (no caches): from
    /// dL/d(last layer's output) down through every layer that kept something, adding each
    /// adapter's gradients on the way; it stops at the lowest trained layer's adapters.
    /// A layer that kept only its input runs again first (the same kernels on the same rows:
    /// the same gradients, bit for bit).
    func decoderLayersBackward(_ dOutput: Tensor, kept: consuming [Kept?], sequences: [Int]) {
        let positions = Self.positions(sequences, start: 0)
        var dx = dOutput
        for index in layers.indices.reversed() {
            let saved: LlamaDecoderLayer.Activations
            switch kept[index] {
            case nil: return
            case .activations(let activations): saved = activations
            case .input(let x):
                saved = layers[index](
                    x, positions: positions, sequences: sequences, frequencies: ropeFrequencies, layout: ropeLayout,
                    caches: [], layer: index, keep: true
                ).1!
            }
            kept[index] = nil // freed as the pass goes down
            let below = index > 0 && kept[index - 1] != nil
            guard
                let next = layers[index].backward(
                    dx, saved, positions: positions, sequences: sequences, frequencies: ropeFrequencies,
                    layout: ropeLayout, inputGradient: below)
            else { return }
            dx = next
        }
    }

    /// Bytes the layers of a pass over `batch` keep for the backward pass, measured over the
    /// distinct buffers they hold (a view keeps its whole buffer alive): what
    /// `TrainingMemory` plans per trained layer.
    public func keptActivationBytes(_ batch: TrainingBatch, recompute: Bool) -> Int {
        guard let lowest = lowestTrainedLayer else { return 0 }
        let kept = decoderLayers(
            batch.tokens, sequences: batch.sequences, caches: [], keeping: Keeping(lowest: lowest, recompute: recompute)
        ).kept
        var buffers: [ObjectIdentifier: Int] = [:]
        func hold(_ tensors: [Tensor]) { for t in tensors { buffers[ObjectIdentifier(t.buffer)] = t.buffer.byteCount } }
        for case let layer? in kept {
            switch layer {
            case .input(let x): hold([x])
            case .activations(let a):
                hold(
                    [
                        a.input, a.attentionRstd, a.residual, a.mlpRstd, a.mlp.gate, a.mlp.up, a.attention.queries, a.attention.keys,
                        a.attention.values, a.attention.mixed,
                    ] + a.attention.probabilities)
            }
        }
        return buffers.values.reduce(0, +)
    }

    // MARK: - Training

    /// Forward, loss and backward over `batch`: adds dL/dA and dL/dB into every attached LoRA
    /// adapter for L = lossScale · Σ per-token losses (lossScale = 1/N gives the mean over the N
    /// targets of an optimizer step, however it is split into batches). `recompute` keeps
    /// only each layer's input and runs the layer again in the backward pass (gradient
    /// checkpointing): the same gradients, bit for bit, for about a third more work.
    public func accumulateGradients(_ batch: TrainingBatch, lossScale: Float, recompute: Bool) -> LossSum {
        guard let lowest = lowestTrainedLayer else { preconditionFailure("LlamaModel.accumulateGradients: no LoRA adapter is attached") }
        let (x, kept) = decoderLayers(
            batch.tokens, sequences: batch.sequences, caches: [],
            keeping: Keeping(lowest: lowest, recompute: recompute))
        let (normed, rstd) = norm(x)
        let (loss, dNormed) = headLoss(normed, targets: batch.targets, gradientScale: lossScale)
        decoderLayersBackward(
            Kernels.rmsNormBackward(dNormed!, x: x, weight: norm.weight, rstd: rstd), kept: consume kept,
            sequences: batch.sequences)
        return loss
    }

    /// The summed loss over `batch`'s counted targets, without gradients (held-out loss).
    public func loss(_ batch: TrainingBatch) -> LossSum {
        guard batch.countedTokens > 0 else { return LossSum() }
        let x = decoderLayers(batch.tokens, sequences: batch.sequences, caches: []).output
        return headLoss(norm(x).output, targets: batch.targets, gradientScale: nil).loss
    }

    /// Cross-entropy of the head's predictions at the counted rows of `normed` [tokens, dim],
    /// `headRows` rows at a time (masked rows cost nothing), summed in double in row order;
    /// with a gradient scale, also dL/dnormed.
    func headLoss(_ normed: Tensor, targets: [Int32], gradientScale: Float?) -> (loss: LossSum, gradient: Tensor?) {
        let counted = targets.indices.filter { targets[$0] >= 0 }
        let gradient = gradientScale.map { _ in Tensor(zeros: normed.shape) }
        var loss = LossSum()
        for start in stride(from: 0, to: counted.count, by: Self.headRows) {
            let rows = Array(counted[start..<min(start + Self.headRows, counted.count)])
            let chunkTargets = rows.map { targets[$0] }
            let logits = lmHead(Kernels.gatherRows(normed, rows.map(Int32.init))) // [rows, vocab]
            let (losses, logSumExp) = Kernels.crossEntropyLosses(logits: logits, targets: chunkTargets)
            loss += LossSum(sum: losses.reduce(0) { $0 + Double($1) }, counted: rows.count)
            guard let gradient, let gradientScale else { continue }
            let dLogits = Kernels.crossEntropyBackward(
                overwriting: logits, targets: chunkTargets, logSumExp: logSumExp, scale: gradientScale)
            Kernels.scatterRows(lmHead.backwardData(dLogits), into: gradient, at: rows)
        }
        return (loss, gradient)
    }

    // MARK: - Size

    /// Parameters of the frozen model (the tied head counted once).
    public var parameterCount: Int {
        let perLayer =
            layers.first.map { layer in
                layer.projections.reduce(0) { $0 + $1.linear.inFeatures * $1.linear.outFeatures }
                    + 2 * config.hiddenSize
            } ?? 0
        let head = config.tieWordEmbeddings ? 0 : config.vocabSize * config.hiddenSize
        return config.vocabSize * config.hiddenSize + layers.count * perLayer + config.hiddenSize + head
    }

    /// Bytes the weights take in memory.
    public var byteCount: Int {
        let projections = self.projections.reduce(0) { $0 + $1.linear.byteCount }
        let norms = (2 * layers.count + 1) * config.hiddenSize * MemoryLayout<Float>.size
        return projections + norms + embedTokens.table.byteCount + (config.tieWordEmbeddings ? 0 : lmHead.byteCount)
    }
}
