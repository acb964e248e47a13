/// The pieces of a Llama decoder layer, named after Hugging Face's modules
/// (`model.layers.N.self_attn.q_proj`, …) so checkpoint keys and adapters map one to one.
/// Each forward returns what its backward needs (<doc:ModelMath>), so the trainer can
/// walk the layers in reverse with nothing recomputed but the cheap elementwise parts.

/// RMSNorm with a learned gain: y = x · rsqrt(mean(x²) + eps) · weight.
public struct RMSNorm: Sendable {
    public let weight: Tensor // [dim]
    public let eps: Float

    public func callAsFunction(_ x: Tensor) -> (output: Tensor, rstd: Tensor) {
        Kernels.rmsNorm(x, weight: weight, eps: eps)
    }
}

/// Projections that read the same input, with their quantized weights stacked into one matrix
/// (q, k, v; gate, up): one fused product instead of several, which matters most when
/// decoding, where each product is a short GEMV. Each projection's own weight is a view of
/// its rows in the stack, and its adapter still applies to its own slice of the output.
struct StackedProjections: Sendable {
    let linears: [Linear]
    let stack: QuantizedWeight?

    /// `stack`, when given, holds the quantized weights of every part (each part a view of it).
    init(_ weights: [Linear.Weight], stack: QuantizedWeight?) {
        linears = weights.map(Linear.init)
        self.stack = stack
    }

    /// Each projection of x [tokens, in]: the fused product writes each output in place
    /// (splitting them after it was 5% of a SmolLM2 training step's samples).
    func callAsFunction(_ x: Tensor) -> [Tensor] {
        guard let stack else { return linears.map { $0(x) } }
        let parts = Kernels.matmul(x.reshaped([x.rowCount, x.rowLength]), stack, parts: linears.map(\.outFeatures))
        for (linear, part) in zip(linears, parts) { linear.adapter?.addOutput(of: x, to: part) }
        return parts
    }

    /// For the forward's input x and each projection's dL/dy: the adapters' gradients, and
    /// dL/dx when `inputGradient` (through the stack in one product when there is one).
    func backward(_ dys: [Tensor], input x: Tensor, inputGradient: Bool) -> Tensor? {
        var dx: Tensor?
        if inputGradient, let stack {
            dx = Kernels.matmulBackwardData(parts: dys, stack, mode: stack.backwardMode)
        } else if inputGradient {
            dx = zip(linears, dys).map { $0.backwardData($1) }.reduce(nil) { sum, part in
                guard let sum else { return part }
                Kernels.add(part, into: sum)
                return sum
            }
        }
        for (linear, dy) in zip(linears, dys) { linear.trainableAdapter?.backward(input: x, outputGradient: dy, inputGradient: dx) }
        return dx
    }
}

public final class LlamaAttention: @unchecked Sendable {
    public var qProj: Linear { qkv.linears[0] }
    public var kProj: Linear { qkv.linears[1] }
    public var vProj: Linear { qkv.linears[2] }
    public let oProj: Linear
    let qkv: StackedProjections
    let heads: Int, kvHeads: Int, headDim: Int

    init(qkv: StackedProjections, o: Linear.Weight, config: LlamaConfig) {
        self.qkv = qkv
        oProj = Linear(o)
        heads = config.numAttentionHeads
        kvHeads = config.numKeyValueHeads
        headDim = config.headDim
    }

    /// What the backward of attention needs (its normed input is recomputed by the layer).
    public struct Activations: Sendable {
        public let queries: Tensor // [tokens, heads·headDim], after RoPE
        public let keys: Tensor // [tokens, kvHeads·headDim], after RoPE
        public let values: Tensor // [tokens, kvHeads·headDim]
        public let probabilities: [Tensor] // per sequence: [heads, tokens, tokens]
        public let mixed: Tensor // [tokens, heads·headDim]: the input of o_proj

        /// Bytes the fields above take for sequences of these lengths: what the memory plan
        /// counts (a test holds it to the tensors a pass keeps).
        static func byteCount(config: LlamaConfig, sequences: [Int]) -> Int {
            let tokens = sequences.reduce(0, +)
            let rows = tokens * (2 * config.queryWidth + 2 * config.keyValueWidth)
            return (rows + sequences.reduce(0) { $0 + config.numAttentionHeads * $1 * $1 }) * MemoryLayout<Float>.size
        }
    }

    /// h [tokens, dim] at `positions` → [tokens, dim]: `sequences` (lengths) side by side,
    /// none attending across another. With caches (one per sequence), sequence i also
    /// attends to the earlier positions of `caches[i]` and appends its keys and values there.
    func callAsFunction(
        _ h: Tensor, positions: [Int32], sequences: [Int], frequencies: [Float], layout: RoPELayout,
        caches: [KVCache], layer: Int, keep: Bool
    ) -> (Tensor, Activations?) {
        let tokens = h.rowCount
        let projected = qkv(h)
        let q = projected[0]
        let k = projected[1]
        let v = projected[2]
        Kernels.rope(q.reshaped([tokens, heads, headDim]), positions: positions, frequencies: frequencies, layout: layout)
        Kernels.rope(k.reshaped([tokens, kvHeads, headDim]), positions: positions, frequencies: frequencies, layout: layout)
        precondition(
            caches.isEmpty || (!keep && caches.count == sequences.count),
            "LlamaAttention: one cache per sequence, and activations for a backward pass are kept without caches")
        let mixed = Tensor(uninitialized: q.shape) // every sequence's rows are written
        var probabilities: [Tensor] = []
        if caches.isEmpty {
            for rows in Self.rowRanges(sequences) {
                let (_, p) = Kernels.attention(
                    queries: q.rows(rows), memory: .rows(keys: k.rows(rows), values: v.rows(rows)),
                    keyCount: rows.count, heads: heads, kvHeads: kvHeads, keepProbabilities: keep,
                    output: mixed.rows(rows))
                if let p { probabilities.append(p) }
            }
        } else {
            for (cache, rows) in zip(caches, Self.rowRanges(sequences)) {
                cache.store(layer: layer, keys: k.rows(rows), values: v.rows(rows))
            }
            Kernels.attention(queries: q, lengths: sequences, caches: caches, layer: layer, heads: heads, kvHeads: kvHeads, output: mixed)
        }
        let output = oProj(mixed)
        guard keep else { return (output, nil) }
        return (output, Activations(queries: q, keys: k, values: v, probabilities: probabilities, mixed: mixed))
    }

    /// The row range of each sequence of the given lengths, side by side.
    static func rowRanges(_ sequences: [Int]) -> [Range<Int>] {
        var start = 0
        return sequences.map { length in
            defer { start += length }
            return start..<start + length
        }
    }

    /// dL/dh from dL/doutput [tokens, dim] for the forward's input h (and the adapters'
    /// gradients on the way); dL/dh only when `inputGradient`.
    func backward(
        _ dOutput: Tensor, _ saved: Activations, input h: Tensor, positions: [Int32], sequences: [Int],
        frequencies: [Float], layout: RoPELayout, inputGradient: Bool
    ) -> Tensor? {
        let dMixed = oProj.backwardData(dOutput)
        oProj.trainableAdapter?.backward(input: saved.mixed, outputGradient: dOutput, inputGradient: dMixed)
        // written in full by each sequence's attention backward
        let dq = Tensor(uninitialized: saved.queries.shape)
        let dk = Tensor(uninitialized: saved.keys.shape)
        let dv = Tensor(uninitialized: saved.values.shape)
        for (rows, probabilities) in zip(Self.rowRanges(sequences), saved.probabilities) {
            Kernels.attentionBackward(
                queries: saved.queries.rows(rows), keys: saved.keys.rows(rows), values: saved.values.rows(rows),
                probabilities: probabilities, outputGradient: dMixed.rows(rows), heads: heads, kvHeads: kvHeads,
                queriesGradient: dq.rows(rows), keysGradient: dk.rows(rows), valuesGradient: dv.rows(rows))
        }
        let tokens = dq.rowCount
        Kernels.rope(dq.reshaped([tokens, heads, headDim]), positions: positions, frequencies: frequencies, layout: layout, inverse: true)
        Kernels.rope(
            dk.reshaped([tokens, kvHeads, headDim]), positions: positions, frequencies: frequencies, layout: layout, inverse: true)
        return qkv.backward([dq, dk, dv], input: h, inputGradient: inputGradient)
    }
}

public final class LlamaMLP: @unchecked Sendable {
    public var gateProj: Linear { gateUp.linears[0] }
    public var upProj: Linear { gateUp.linears[1] }
    public let downProj: Linear
    let gateUp: StackedProjections

    init(gateUp: StackedProjections, down: Linear.Weight) {
        self.gateUp = gateUp
        downProj = Linear(down)
    }

    /// What the backward needs. silu(gate)·up, down_proj's input, is not kept: the backward
    /// recomputes it (an elementwise pass, bit for bit the same) instead of holding a third
    /// [tokens, hidden] tensor per layer; nor is the normed input, which the layer recomputes.
    public struct Activations: Sendable {
        public let gate: Tensor // [tokens, hidden]
        public let up: Tensor // [tokens, hidden]

        /// Bytes the fields above take for `tokens` rows.
        static func byteCount(config: LlamaConfig, tokens: Int) -> Int { 2 * tokens * config.intermediateSize * MemoryLayout<Float>.size }
    }

    func callAsFunction(_ h: Tensor, keep: Bool) -> (Tensor, Activations?) {
        let projected = gateUp(h)
        let gate = projected[0]
        let up = projected[1]
        let output = downProj(Kernels.swiglu(gate: gate, up: up))
        return (output, keep ? Activations(gate: gate, up: up) : nil)
    }

    /// dL/dh from dL/doutput [tokens, dim] for the forward's input h; only when `inputGradient`.
    func backward(_ dOutput: Tensor, _ saved: Activations, input h: Tensor, inputGradient: Bool) -> Tensor? {
        let dMixed = downProj.backwardData(dOutput)
        if let adapter = downProj.trainableAdapter {
            adapter.backward(input: Kernels.swiglu(gate: saved.gate, up: saved.up), outputGradient: dOutput, inputGradient: dMixed)
        }
        let (dGate, dUp) = Kernels.swigluBackward(dMixed, gate: saved.gate, up: saved.up)
        return gateUp.backward([dGate, dUp], input: h, inputGradient: inputGradient)
    }
}

public final class LlamaDecoderLayer: @unchecked Sendable {
    public let selfAttn: LlamaAttention
    public let mlp: LlamaMLP
    public let inputLayernorm: RMSNorm
    public let postAttentionLayernorm: RMSNorm

    init(selfAttn: LlamaAttention, mlp: LlamaMLP, inputLayernorm: RMSNorm, postAttentionLayernorm: RMSNorm) {
        self.selfAttn = selfAttn
        self.mlp = mlp
        self.inputLayernorm = inputLayernorm
        self.postAttentionLayernorm = postAttentionLayernorm
    }

    /// A projection of the layer by its place in the table.
    public subscript(_ projection: Projection) -> Linear {
        switch projection {
        case .q: selfAttn.qProj
        case .k: selfAttn.kProj
        case .v: selfAttn.vProj
        case .o: selfAttn.oProj
        case .gate: mlp.gateProj
        case .up: mlp.upProj
        case .down: mlp.downProj
        }
    }

    /// The seven projections in the table's order.
    public var projections: [(projection: Projection, linear: Linear)] { Projection.allCases.map { ($0, self[$0]) } }

    public struct Activations: Sendable {
        public let input: Tensor // [tokens, dim]
        public let attentionRstd: Tensor // [tokens]
        public let attention: LlamaAttention.Activations
        public let residual: Tensor // [tokens, dim]: input + attention, the MLP block's input
        public let mlpRstd: Tensor // [tokens]
        public let mlp: LlamaMLP.Activations

        /// Bytes the fields above take for sequences of these lengths.
        static func byteCount(config: LlamaConfig, sequences: [Int]) -> Int {
            let tokens = sequences.reduce(0, +)
            return (2 * tokens * config.hiddenSize + 2 * tokens) * MemoryLayout<Float>.size
                + LlamaAttention.Activations.byteCount(config: config, sequences: sequences)
                + LlamaMLP.Activations.byteCount(config: config, tokens: tokens)
        }
    }

    /// x [tokens, dim] → x + attention(norm(x)) + mlp(norm(·)). `x` is not modified.
    func callAsFunction(
        _ x: Tensor, positions: [Int32], sequences: [Int], frequencies: [Float], layout: RoPELayout,
        caches: [KVCache], layer: Int, keep: Bool
    ) -> (Tensor, Activations?) {
        let (h, attentionRstd) = inputLayernorm(x)
        let (attention, attentionActivations) = selfAttn(
            h, positions: positions, sequences: sequences, frequencies: frequencies,
            layout: layout, caches: caches, layer: layer, keep: keep)
        Kernels.add(x, into: attention)
        let residual = attention
        let (h2, mlpRstd) = postAttentionLayernorm(residual)
        let (output, mlpActivations) = mlp(h2, keep: keep)
        Kernels.add(residual, into: output)
        guard keep, let attentionActivations, let mlpActivations else { return (output, nil) }
        return (
            output,
            Activations(
                input: x, attentionRstd: attentionRstd, attention: attentionActivations,
                residual: residual, mlpRstd: mlpRstd, mlp: mlpActivations)
        )
    }

    /// dL/dx from dL/doutput, through both residual blocks; the adapters' gradients are
    /// summed on the way. Without `inputGradient` (the lowest trained layer) it stops at the
    /// adapters and returns nil.
    func backward(
        _ dOutput: Tensor, _ saved: Activations, positions: [Int32], sequences: [Int], frequencies: [Float],
        layout: RoPELayout, inputGradient: Bool
    ) -> Tensor? {
        // the normed inputs again, rather than kept: the same kernel on the same rows, bit for bit
        let dh2 = mlp.backward(dOutput, saved.mlp, input: postAttentionLayernorm(saved.residual).output, inputGradient: true)!
        let dResidual = Kernels.rmsNormBackward(dh2, x: saved.residual, weight: postAttentionLayernorm.weight, rstd: saved.mlpRstd)
        Kernels.add(dOutput, into: dResidual)
        guard
            let dh = selfAttn.backward(
                dResidual, saved.attention, input: inputLayernorm(saved.input).output, positions: positions,
                sequences: sequences, frequencies: frequencies, layout: layout, inputGradient: inputGradient)
        else { return nil }
        let dx = Kernels.rmsNormBackward(dh, x: saved.input, weight: inputLayernorm.weight, rstd: saved.attentionRstd)
        Kernels.add(dResidual, into: dx)
        return dx
    }
}
