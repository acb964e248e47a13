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

    init(config: LlamaConfig, ropeLayout: RoPELayout, ropeFrequencies: [Float], embedTokens: Embedding,
         layers: [LlamaDecoderLayer], norm: RMSNorm, lmHead: Linear) {
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
        layers.enumerated().flatMap { index, layer in
            layer.selfAttn.projections.map { ("model.layers.\(index).self_attn.\($0.name)", $0.linear) }
                + layer.mlp.projections.map { ("model.layers.\(index).mlp.\($0.name)", $0.linear) }
        }
    }

    /// Which positions get logits: all for scoring, the last for generating, none for
    /// filling a cache.
    public enum LogitRows: Sendable { case all, last, none }

    public struct Activations: Sendable {
        public let layers: [LlamaDecoderLayer.Activations]
        public let finalInput: Tensor  // [tokens, dim]: the input of the final norm
        public let finalRstd: Tensor   // [tokens]
        public let finalNormed: Tensor // [tokens, dim]: the input of lm_head
    }

    /// A cache for `capacity` positions; half precision for an int8 model (its own rounding
    /// dwarfs the cache's), f32 for an exact one.
    public func makeCache(capacity: Int? = nil) -> KVCache {
        let exact = if case .f32 = lmHead.weight { true } else { false }
        return KVCache(config: config, capacity: capacity ?? config.maxPositionEmbeddings, precision: exact ? .f32 : .f16)
    }

    /// Runs `tokens` at positions following what `cache` holds (or from 0 without one) and
    /// returns logits [rows, vocab]. Without a cache, `sequences` (lengths summing to the
    /// token count) puts several sequences side by side: each starts at position 0 and none
    /// attends to another. With `keepActivations` (training) it also returns everything the
    /// backward pass needs.
    public func forward(_ tokens: [Int32], sequences: [Int]? = nil, cache: KVCache? = nil, logits rows: LogitRows = .all,
                        keepActivations: Bool = false) -> (logits: Tensor?, activations: Activations?) {
        let sequences = sequences ?? [tokens.count]
        precondition(cache == nil || sequences.count == 1, "LlamaModel.forward: sequences \(sequences) with one cache")
        check(tokens, sequences: sequences, caches: cache.map { [$0] } ?? [])
        let (x, kept) = decoderLayers(tokens, sequences: sequences, caches: cache.map { [$0] } ?? [], keep: keepActivations)
        let finalInput = rows == .last && !keepActivations ? x.rows(tokens.count - 1..<tokens.count) : x
        let (normed, rstd) = norm(finalInput)
        let logits: Tensor?
        switch rows {
        case .all: logits = lmHead(normed)
        case .last: logits = lmHead(normed.rows(normed.rowCount - 1..<normed.rowCount))
        case .none: logits = nil
        }
        let activations = keepActivations ? Activations(layers: kept, finalInput: x, finalRstd: rstd, finalNormed: normed) : nil
        return (logits, activations)
    }

    /// Several sequences side by side, each continuing its own cache (`caches[i]` for
    /// `sequences[i]`, all distinct): batched decoding, where B sequences turn every GEMV
    /// into one small GEMM, and the continuations of one shared context. Returns logits
    /// [tokens, vocab] for `.all`, and each sequence's last row [sequences, vocab] for `.last`.
    public func forward(_ tokens: [Int32], sequences: [Int], caches: [KVCache], logits rows: LogitRows) -> Tensor? {
        precondition(caches.count == sequences.count && Set(caches.map(ObjectIdentifier.init)).count == caches.count,
                     "LlamaModel.forward: \(caches.count) caches for \(sequences.count) sequences (one distinct cache each)")
        check(tokens, sequences: sequences, caches: caches)
        let (x, _) = decoderLayers(tokens, sequences: sequences, caches: caches, keep: false)
        switch rows {
        case .all: return lmHead(norm(x).output)
        case .none: return nil
        case .last:
            var end = 0
            let lastRows = sequences.map { end += $0; return Int32(end - 1) }
            return lmHead(norm(Kernels.gatherRows(x, lastRows)).output)
        }
    }

    private func check(_ tokens: [Int32], sequences: [Int], caches: [KVCache]) {
        precondition(!tokens.isEmpty, "LlamaModel.forward: no tokens")
        precondition(tokens.allSatisfy { $0 >= 0 && Int($0) < config.vocabSize },
                     "LlamaModel.forward: a token id is outside the vocabulary of \(config.vocabSize)")
        precondition(sequences.allSatisfy { $0 > 0 } && sequences.reduce(0, +) == tokens.count,
                     "LlamaModel.forward: sequences \(sequences) for \(tokens.count) tokens")
        for (cache, length) in zip(caches, sequences) {
            precondition(cache.free >= length, "LlamaModel.forward: \(length) tokens do not fit the cache (\(cache.free) free)")
        }
    }

    /// The decoder layers over `tokens` (checked by the caller): the last layer's output
    /// [tokens, dim] and, with `keep`, every layer's activations. Sequence i continues
    /// `caches[i]` and is appended to it (no caches: every sequence starts at 0).
    func decoderLayers(_ tokens: [Int32], sequences: [Int], caches: [KVCache], keep: Bool) -> (Tensor, [LlamaDecoderLayer.Activations]) {
        let positions = caches.isEmpty ? Self.positions(sequences, start: 0)
            : zip(sequences, caches).flatMap { length, cache in (0..<length).map { Int32(cache.count + $0) } }
        var x = embedTokens(tokens)
        var kept: [LlamaDecoderLayer.Activations] = []
        for (index, layer) in layers.enumerated() {
            let (output, activations) = layer(x, positions: positions, sequences: sequences, frequencies: ropeFrequencies,
                                              layout: ropeLayout, caches: caches, layer: index, keep: keep)
            if let activations { kept.append(activations) }
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

    /// Parameters of the frozen model (the tied head counted once).
    public var parameterCount: Int {
        let perLayer = layers.first.map { layer in
            (layer.selfAttn.projections + layer.mlp.projections).reduce(0) { $0 + $1.linear.inFeatures * $1.linear.outFeatures }
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
