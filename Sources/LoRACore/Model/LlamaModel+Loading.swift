/// How the loaded model holds its big matrices.
public enum WeightPrecision: String, Sendable, CaseIterable {
    /// int8 blocks of 32 (Q8_0): GGUF Q8_0 data as is, every other type requantized.
    case int8
    /// Exact f32 values of the stored weights: reference runs.
    case f32
}

/// A checkpoint's tensors by name, whatever the file format.
protocol CheckpointTensors {
    var path: String { get }
    func contains(_ name: String) -> Bool
    func slice(_ name: String) throws(LoRAError) -> TensorSlice
    /// Hands back the memory behind a slice once it has been converted.
    func release(_ slice: TensorSlice)
}

/// Where each Llama tensor lives in a checkpoint's naming scheme.
struct LlamaTensorNames: Sendable {
    let embedding: String
    let norm: String
    let output: String
    let layer: @Sendable (Int, Part) -> String

    enum Part: CaseIterable {
        case q, k, v, o, gate, up, down, attentionNorm, mlpNorm
    }

    static let gguf = LlamaTensorNames(embedding: "token_embd.weight", norm: "output_norm.weight", output: "output.weight") { i, part in
        let name = switch part {
        case .q: "attn_q"
        case .k: "attn_k"
        case .v: "attn_v"
        case .o: "attn_output"
        case .gate: "ffn_gate"
        case .up: "ffn_up"
        case .down: "ffn_down"
        case .attentionNorm: "attn_norm"
        case .mlpNorm: "ffn_norm"
        }
        return "blk.\(i).\(name).weight"
    }

    static let huggingFace = LlamaTensorNames(embedding: "model.embed_tokens.weight", norm: "model.norm.weight",
                                              output: "lm_head.weight") { i, part in
        let name = switch part {
        case .q: "self_attn.q_proj"
        case .k: "self_attn.k_proj"
        case .v: "self_attn.v_proj"
        case .o: "self_attn.o_proj"
        case .gate: "mlp.gate_proj"
        case .up: "mlp.up_proj"
        case .down: "mlp.down_proj"
        case .attentionNorm: "input_layernorm"
        case .mlpNorm: "post_attention_layernorm"
        }
        return "model.layers.\(i).\(name).weight"
    }
}

extension LlamaModel {
    /// Builds the model from a checkpoint's tensors, converting each one as it is read and
    /// releasing its source bytes, so memory peaks near the converted model's size.
    convenience init(config: LlamaConfig, tensors: CheckpointTensors, names: LlamaTensorNames, ropeLayout: RoPELayout,
                     ropeFrequencies: [Float], precision: WeightPrecision,
                     progress: ((WorkProgress) -> Void)?) throws(LoRAError) {
        let dim = config.hiddenSize, hidden = config.intermediateSize
        let total = 9 * config.numHiddenLayers + 2 + (config.tieWordEmbeddings ? 0 : 1)
        var done = 0
        func step() {
            done += 1
            progress?(WorkProgress(completed: done, total: total, unit: "tensors"))
        }
        func read(_ name: String, _ shape: [Int]) throws(LoRAError) -> TensorSlice {
            let slice = try tensors.slice(name)
            guard slice.shape == shape else {
                throw .tensorShapeMismatch(file: tensors.path, tensor: name, expected: shape, actual: slice.shape)
            }
            return slice
        }
        /// Converts a tensor into `target` (int8) or returns its exact f32 values.
        func convert(_ name: String, _ shape: [Int], into target: QuantizedWeight?) throws(LoRAError) -> Linear.Weight {
            let slice = try read(name, shape)
            defer { tensors.release(slice); step() }
            guard let target else { return .f32(slice.dequantized()) }
            if slice.type == .q8_0 {
                try target.fill(q8_0Blocks: slice.bytes, name: name)
            } else {
                target.fill { rows, values in slice.dequantize(rows: rows, into: values) }
            }
            return .int8(target)
        }
        func matrix(_ name: String, _ shape: [Int]) throws(LoRAError) -> Linear.Weight {
            try convert(name, shape, into: precision == .int8 ? QuantizedWeight(rows: shape[0], cols: shape[1]) : nil)
        }
        /// Projections of one input, converted straight into one stacked int8 matrix.
        func stacked(_ parts: [(name: String, shape: [Int])]) throws(LoRAError) -> StackedProjections {
            guard precision == .int8, let (stack, views) = QuantizedWeight.stack(partRows: parts.map { $0.shape[0] }, cols: dim) else {
                var weights: [Linear.Weight] = []
                for part in parts { weights.append(try matrix(part.name, part.shape)) }
                return StackedProjections(weights, stack: nil)
            }
            var weights: [Linear.Weight] = []
            for (part, view) in zip(parts, views) { weights.append(try convert(part.name, part.shape, into: view)) }
            return StackedProjections(weights, stack: stack)
        }
        func vector(_ name: String) throws(LoRAError) -> Tensor {
            let slice = try read(name, [dim])
            defer { tensors.release(slice); step() }
            return slice.dequantized()
        }

        let embedding = Embedding(try matrix(names.embedding, [config.vocabSize, dim]))
        var layers: [LlamaDecoderLayer] = []
        for i in 0..<config.numHiddenLayers {
            let qkv = try stacked([(names.layer(i, .q), [config.queryWidth, dim]), (names.layer(i, .k), [config.keyValueWidth, dim]),
                                   (names.layer(i, .v), [config.keyValueWidth, dim])])
            let attention = LlamaAttention(qkv: qkv, o: try matrix(names.layer(i, .o), [dim, config.queryWidth]), config: config)
            let gateUp = try stacked([(names.layer(i, .gate), [hidden, dim]), (names.layer(i, .up), [hidden, dim])])
            let mlp = LlamaMLP(gateUp: gateUp, down: try matrix(names.layer(i, .down), [dim, hidden]))
            layers.append(LlamaDecoderLayer(
                selfAttn: attention, mlp: mlp,
                inputLayernorm: RMSNorm(weight: try vector(names.layer(i, .attentionNorm)), eps: config.rmsNormEps),
                postAttentionLayernorm: RMSNorm(weight: try vector(names.layer(i, .mlpNorm)), eps: config.rmsNormEps)))
        }
        let norm = RMSNorm(weight: try vector(names.norm), eps: config.rmsNormEps)
        let head = config.tieWordEmbeddings ? Linear(embedding.table) : Linear(try matrix(names.output, [config.vocabSize, dim]))
        self.init(config: config, ropeLayout: ropeLayout, ropeFrequencies: ropeFrequencies, embedTokens: embedding,
                  layers: layers, norm: norm, lmHead: head)
    }
}

extension GGUFFile: CheckpointTensors {
    func contains(_ name: String) -> Bool { tensor(named: name) != nil }
    func release(_ slice: TensorSlice) { file.release(slice.fileRange) }
}

extension LlamaModel {
    /// Loads a GGUF file of architecture `llama`. Its Q/K rows are stored permuted for
    /// adjacent-pair RoPE (gguf.md §7), so the model rotates adjacent pairs.
    public convenience init(gguf: GGUFFile, precision: WeightPrecision = .int8,
                            progress: ((WorkProgress) -> Void)? = nil) throws(LoRAError) {
        let config = try LlamaConfig(gguf: gguf)
        var frequencies = config.ropeFrequencies()
        // Llama 3.1 files carry their long-context rescaling as per-pair divisors.
        if gguf.contains("rope_freqs.weight") {
            let factors = try gguf.slice("rope_freqs.weight")
            guard factors.shape == [frequencies.count] else {
                throw .tensorShapeMismatch(file: gguf.path, tensor: "rope_freqs.weight", expected: [frequencies.count], actual: factors.shape)
            }
            frequencies = zip(frequencies, factors.dequantized().scalars).map { $0 / $1 }
        }
        try self.init(config: config, tensors: gguf, names: .gguf, ropeLayout: .adjacentPairs, ropeFrequencies: frequencies,
                      precision: precision, progress: progress)
    }
}
